"""Workflow definitions: a graph of steps, checked as a whole before anything runs.

A definition is data (it arrives as YAML or JSON from the template catalogue or the API). Compiling
it checks every reference between steps, every CEL expression and every template, refuses cycles
and unreachable steps, and returns the steps indexed by key. A run keeps the definition it started
with, so a later version never changes a run under way.

Kinds of step (``kind``):

- ``action``: calls a connector capability with rendered ``inputs``; retried per ``retry``; an
  unavailable connector takes the ``fallback`` path when one is declared; exhausted retries open a
  human fallback task unless ``on_exhausted: fail``.
- ``condition``: a CEL expression picks ``then`` or ``else``.
- ``set``: CEL expressions computed into the step's output.
- ``parallel``: starts every step in ``branches``; a ``join`` waits for all steps in its ``after``.
- ``timer``: waits ``seconds``.
- ``wait_for_event``: waits for an event of ``event_type`` whose ``correlation`` value matches,
  taking ``on_timeout`` after ``timeout_seconds``.
- ``task``: a person does something and records the outcome.
- ``approval``: people sign a control point with a reason (k of n, separation of duties, expiry).
- ``escalate``: starts an escalation ladder (``levels``) and goes on at once; the ladder pages on
  its own timers until someone acknowledges.
- ``lookup``: reads through a capability (as an action calls one, with its ``retry``, but with no
  effect record: a read is safe to repeat); the answer, narrowed by the JMESPath ``select``, is the
  step's output; a missing (not found) or empty answer takes ``on_empty`` when one is declared.
- ``subflow``: starts the tenant's ``workflow`` (by key, its latest version) as a child run with the
  rendered ``inputs``; with ``wait`` the step waits for the child and passes with its outcome (a
  failed or cancelled child fails the step, or takes ``on_failure``); without, it goes on at once.
  A waiting step may give up after ``timeout_seconds`` (taking ``on_timeout``, as a
  ``wait_for_event`` does, or failing); the child it stopped waiting for is then cancelled unless
  ``cancel_child_on_timeout: false`` (which keeps it only along ``on_timeout``: a run that fails
  cancels its running children, a succeeded one leaves its ``wait: false`` children running).

Beside the steps, a definition may carry ``sla`` policies (the first whose ``when`` matches the
trigger event sets the run's acknowledge / resolve / coordinate due times) and a run-wide
``escalation`` ladder started with the run and ended when it succeeds. A ladder's ``notify`` (or a
level's own) names the channels its pages go through: ``notify`` capabilities of the customer's
e-mail, Slack or Teams connections. Durations are seconds, as everywhere in a definition.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import jmespath
import msgspec
from jmespath.exceptions import JMESPathError

from andon.platform.engine.expressions import ExpressionError, check_template, compile_cel
from andon.platform.http.errors import ValidationFailedError

Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
CapabilityName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.]{0,99}$")]
# A workflow's key, as the API names it (WorkflowCreate.key).
WorkflowKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,99}$")]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=366 * 24 * 3600)]


class RetryPolicy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    initial_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    backoff: Annotated[float, msgspec.Meta(ge=1, le=10)] = 2.0
    max_seconds: Annotated[float, msgspec.Meta(gt=0, le=24 * 3600)] = 300.0
    # A fraction of each delay drawn at random, so retries of many runs do not arrive together.
    jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
    # Error kinds that retrying cannot fix (the capability says which kind an error is).
    non_retryable: list[str] = msgspec.field(default_factory=lambda: ["invalid", "forbidden", "not_found"])

    def delay(self, attempt: int, draw: float) -> float:
        """Seconds before attempt ``attempt + 1``; ``draw`` is uniform in [0, 1)."""
        base = min(self.initial_seconds * self.backoff ** (attempt - 1), self.max_seconds)
        return base * (1 - self.jitter * draw)


class StepBase(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    key: Key
    title: Annotated[str, msgspec.Meta(max_length=200)] = ""
    # The step that follows; None ends this path (the run ends when no path is left).
    next: Key | None = None

    def successors(self) -> Iterator[str]:
        if self.next:
            yield self.next


class ActionStep(StepBase, tag="action"):
    capability: CapabilityName
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # Taken when the connector is unavailable (graceful degradation), instead of retrying.
    fallback: Key | None = None
    on_exhausted: Literal["task", "fail"] = "task"

    def successors(self) -> Iterator[str]:
        yield from super().successors()
        if self.fallback:
            yield self.fallback


class ConditionStep(StepBase, tag="condition"):
    when: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    then: Key | None = None
    otherwise: Key | None = msgspec.field(default=None, name="else")

    def successors(self) -> Iterator[str]:
        for key in (self.then, self.otherwise):
            if key:
                yield key


class SetStep(StepBase, tag="set"):
    values: dict[str, Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]]


class ParallelStep(StepBase, tag="parallel"):
    branches: Annotated[list[Key], msgspec.Meta(min_length=2, max_length=20)]

    def successors(self) -> Iterator[str]:
        yield from self.branches


class JoinStep(StepBase, tag="join"):
    after: Annotated[list[Key], msgspec.Meta(min_length=2, max_length=20)]


class TimerStep(StepBase, tag="timer"):
    seconds: Seconds


class WaitForEventStep(StepBase, tag="wait_for_event"):
    event_type: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    # A template rendered when the wait begins; an arriving event matches when its ``correlation_of``
    # CEL expression (over ``event``) gives the same text.
    correlation: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    correlation_of: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] = "event.subject"
    timeout_seconds: Seconds = 3600
    on_timeout: Key | None = None

    def successors(self) -> Iterator[str]:
        yield from super().successors()
        if self.on_timeout:
            yield self.on_timeout


# A person, by e-mail or user id, as a template over the run's context.
Assignee = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class TaskStep(StepBase, tag="task"):
    instructions: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    # Who may do it: a role of the customer (and, optionally, only people of the run's site).
    role: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "supervisor"
    due_seconds: Seconds | None = None
    # One person who does it (a template giving a user's e-mail or id, "{{ event.data.owner }}"); a
    # person the customer does not have, or who does not hold ``role``, leaves it to the role.
    assignee: Assignee | None = None


class ApprovalStep(StepBase, tag="approval"):
    """A control point (safety, compliance, money): people holding the approval permission sign it
    with a reason and their password (an electronic signature), and it passes when ``approvals`` of
    them approved ("all": every candidate named in ``approvers``); one rejection rejects it."""

    instructions: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    role: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "supervisor"
    approvals: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1
    # What the signature means, recorded with it ("Approved for release", "Disposition: scrap").
    meaning: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "Approved"
    # Separation of duties: whoever asked (a template over the context; default the run's starter)
    # may not approve it.
    requester: Annotated[str, msgspec.Meta(max_length=500)] = "{{ run.started_by }}"
    # The one person who signs it (as a task's ``assignee``); only for a single signature.
    assignee: Assignee | None = None
    expires_seconds: Seconds | None = None
    remind_seconds: Seconds | None = None
    on_reject: Key | None = None
    on_expired: Key | None = None

    def successors(self) -> Iterator[str]:
        yield from super().successors()
        for key in (self.on_reject, self.on_expired):
            if key:
                yield key


class Target(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Who a level pages: exactly one of a role (the people of that role on the run site's shift
    calendar, by default only the shift on duty when the level fires), a user (e-mail or id) of the
    customer, or the partner's support people."""

    role: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,62}$")] | None = None
    on_shift: bool = True
    user: Annotated[str, msgspec.Meta(min_length=3, max_length=320)] | None = None
    partner_support: bool = False

    def chosen(self) -> list[str]:
        return [name for name in ("role", "user") if getattr(self, name) is not None] + (
            ["partner_support"] if self.partner_support else []
        )


# Where a page goes: a ``notify`` capability of one of the customer's outbound connections
# ("ops_mail.notify": an e-mail, Slack or Teams connection), checked when the workflow is saved.
Channels = Annotated[list[CapabilityName], msgspec.Meta(max_length=10)]


class EscalationLevel(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    # Seconds after the previous level paged (the first level: after the ladder started).
    after: Annotated[float, msgspec.Meta(ge=0, le=30 * 24 * 3600)]
    targets: Annotated[list[Target], msgspec.Meta(min_length=1, max_length=20)]
    # Pages this level again this many times, ``repeat_every`` seconds apart, before the next level.
    repeat: Annotated[int, msgspec.Meta(ge=0, le=20)] = 0
    repeat_every: Seconds | None = None
    # This level's channels instead of the ladder's ([] : this level is recorded, not sent).
    notify: Channels | None = None


Levels = Annotated[list[EscalationLevel], msgspec.Meta(min_length=1, max_length=10)]


class EscalationPolicy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    levels: Levels
    # The channels every level pages through (unless a level names its own); none: pages are recorded.
    notify: Channels = msgspec.field(default_factory=list)
    # CEL over ``event``, ``alert`` and ``params``: the ladder starts with the run only when true.
    when: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | None = None


class SlaPolicy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Due times for one class of trigger event; a run takes the first policy whose ``when`` holds."""

    name: Key
    when: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | None = None
    acknowledge_within: Seconds | None = None
    # Until the run's incident (or alert) is resolved.
    resolve_within: Seconds | None = None
    # Until the run itself succeeded: every coordination step done.
    coordinate_within: Seconds | None = None

    def dues(self) -> list[tuple[str, float]]:
        return [
            (kind, seconds)
            for kind, seconds in (
                ("acknowledge", self.acknowledge_within),
                ("resolve", self.resolve_within),
                ("coordinate", self.coordinate_within),
            )
            if seconds is not None
        ]


class EscalateStep(StepBase, tag="escalate"):
    """Starts a ladder and goes on at once; acknowledging the run (or its incident) stops it."""

    levels: Levels
    # As the run-wide ladder's ``notify``.
    notify: Channels = msgspec.field(default_factory=list)


class LookupStep(StepBase, tag="lookup"):
    """Reads into the context: the capability's answer (narrowed by ``select``) is the output."""

    capability: CapabilityName
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    # A JMESPath expression over the answer (``body.items[:5]``); None keeps the whole answer.
    select: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)] | None = None
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # Taken when the answer is missing (not found) or empty (null, "", [] or {} after ``select``).
    on_empty: Key | None = None

    def successors(self) -> Iterator[str]:
        yield from super().successors()
        if self.on_empty:
            yield self.on_empty


class SubflowStep(StepBase, tag="subflow"):
    """Another workflow of the tenant as a child run; its ``inputs`` are rendered from this run."""

    workflow: WorkflowKey
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    wait: bool = True
    # Taken when the awaited child failed or was cancelled (instead of failing this step).
    on_failure: Key | None = None
    # As a wait_for_event's: None waits for the child as long as it runs.
    timeout_seconds: Seconds | None = None
    on_timeout: Key | None = None
    # A parent that stopped waiting leaves no work running, unless the definition wants the child
    # to finish on its own.
    cancel_child_on_timeout: bool = True

    def successors(self) -> Iterator[str]:
        yield from super().successors()
        for key in (self.on_failure, self.on_timeout):
            if key:
                yield key


Step = (
    ActionStep
    | ConditionStep
    | SetStep
    | ParallelStep
    | JoinStep
    | TimerStep
    | WaitForEventStep
    | TaskStep
    | ApprovalStep
    | EscalateStep
    | LookupStep
    | SubflowStep
)


class Definition(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    steps: Annotated[list[Step], msgspec.Meta(min_length=1, max_length=200)]
    # The first step; default the first in the list.
    start: Key | None = None
    sla: Annotated[list[SlaPolicy], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    escalation: EscalationPolicy | None = None


class Compiled:
    """A checked definition: steps by key, the entry step, and the joins' predecessors."""

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.steps: dict[str, Step] = {s.key: s for s in definition.steps}
        self.start = definition.start or definition.steps[0].key

    def step(self, key: str) -> Step:
        return self.steps[key]

    def to_builtins(self) -> dict[str, Any]:
        built: dict[str, Any] = msgspec.to_builtins(self.definition)
        # A definition without SLA or ladder is stored as it was before either existed.
        for name, empty in (("sla", []), ("escalation", None)):
            if built.get(name) == empty:
                built.pop(name, None)
        return built


def compile_definition(source: Mapping[str, Any] | Definition) -> Compiled:
    """The definition, checked; a refusal lists every problem by field (``steps[2].when``)."""
    if isinstance(source, Definition):
        definition = source
    else:
        try:
            definition = msgspec.convert(source, Definition, strict=False)
        except msgspec.ValidationError as exc:
            message, _, path = str(exc).partition(" - at `$")
            raise _refusal([(path.rstrip("`").lstrip(".") or "definition", message)]) from None
    problems = list(_problems(definition))
    if problems:
        raise _refusal(problems)
    return Compiled(definition)


def _refusal(problems: list[tuple[str, str]]) -> ValidationFailedError:
    return ValidationFailedError(
        "The workflow is not valid: " + "; ".join(f"{f}: {m}" for f, m in problems[:10]),
        extra={"errors": [{"field": f, "message": m} for f, m in problems]},
    )


def _problems(definition: Definition) -> Iterator[tuple[str, str]]:
    where = {s.key: f"steps[{i}]" for i, s in enumerate(definition.steps)}
    if len(where) != len(definition.steps):
        seen: set[str] = set()
        for i, s in enumerate(definition.steps):
            if s.key in seen:
                yield f"steps[{i}].key", f"'{s.key}' is used by an earlier step"
            seen.add(s.key)
        return
    steps = {s.key: s for s in definition.steps}
    start = definition.start or definition.steps[0].key
    if start not in steps:
        yield "start", f"no step '{start}'"
        return
    for step in definition.steps:
        at = where[step.key]
        for target in step.successors():
            if target not in steps:
                yield at, f"goes to '{target}', which is not a step"
            elif target == step.key:
                yield at, "goes to itself"
        yield from _expressions(step, at)
        if isinstance(step, SubflowStep):
            yield from _subflow_wait(step, at)
        if isinstance(step, JoinStep):
            for key in step.after:
                if key not in steps:
                    yield f"{at}.after", f"'{key}' is not a step"
                elif step.key not in set(steps[key].successors()):
                    yield f"{at}.after", f"'{key}' does not go to this join"
    yield from _shape(steps, start, where)
    yield from _policies(definition)


def _expressions(step: Step, at: str) -> Iterator[tuple[str, str]]:
    cel_sources: list[tuple[str, str]] = []
    templates: list[tuple[str, str]] = []
    if isinstance(step, ConditionStep):
        cel_sources.append(("when", step.when))
    elif isinstance(step, SetStep):
        cel_sources += [(f"values.{k}", v) for k, v in step.values.items()]
    elif isinstance(step, WaitForEventStep):
        cel_sources.append(("correlation_of", step.correlation_of))
        templates.append(("correlation", step.correlation))
    elif isinstance(step, ActionStep | LookupStep | SubflowStep):
        templates += [(f"inputs.{path}", text) for path, text in _strings(step.inputs)]
        if isinstance(step, LookupStep) and step.select is not None:
            try:
                jmespath.compile(step.select)
            except JMESPathError as exc:
                yield f"{at}.select", f"not a JMESPath expression: {exc}"
    elif isinstance(step, TaskStep):
        templates += [("title", step.title), ("instructions", step.instructions)]
        templates += [("assignee", step.assignee)] if step.assignee else []
    elif isinstance(step, ApprovalStep):
        templates += [("title", step.title), ("instructions", step.instructions), ("requester", step.requester)]
        templates += [("assignee", step.assignee)] if step.assignee else []
        if step.assignee and step.approvals > 1:
            yield f"{at}.assignee", "an approval that needs several signatures is not assigned to one person"
    elif isinstance(step, EscalateStep):
        yield from _levels(step.levels, f"{at}.levels")
        yield from _channels(step.notify, f"{at}.notify")
    for field, source in cel_sources:
        try:
            compile_cel(source)
        except ExpressionError as exc:
            yield f"{at}.{field}", f"not a CEL expression: {exc}"
    for field, source in templates:
        try:
            check_template(source)
        except ExpressionError as exc:
            yield f"{at}.{field}", f"not a template: {exc}"


def _subflow_wait(step: SubflowStep, at: str) -> Iterator[tuple[str, str]]:
    if step.wait:
        if step.on_timeout and step.timeout_seconds is None:
            yield f"{at}.on_timeout", "on_timeout needs timeout_seconds (how long to wait for the child run)"
        return
    for name in ("timeout_seconds", "on_timeout"):
        if getattr(step, name) is not None:
            yield f"{at}.{name}", f"a subflow that does not wait (wait: false) has no {name}"


def _levels(levels: list[EscalationLevel], at: str) -> Iterator[tuple[str, str]]:
    for i, level in enumerate(levels):
        for j, target in enumerate(level.targets):
            chosen = target.chosen()
            if len(chosen) != 1:
                yield (
                    f"{at}[{i}].targets[{j}]",
                    "name exactly one of role (with on_shift), user or partner_support: true"
                    + (f"; this names {', '.join(chosen)}" if chosen else ""),
                )
        if level.repeat and level.repeat_every is None:
            yield f"{at}[{i}].repeat_every", "a level that repeats needs repeat_every (seconds between pages)"
        if level.notify is not None:
            yield from _channels(level.notify, f"{at}[{i}].notify")


def _channels(channels: list[str], at: str) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    for i, channel in enumerate(channels):
        key, _, capability = channel.partition(".")
        if not key or not capability:
            yield f"{at}[{i}]", f"'{channel}' is not '<connection key>.notify' (an outbound connection's notify)"
        elif channel in seen:
            yield f"{at}[{i}]", f"'{channel}' is named twice"
        seen.add(channel)


def ladder_channels(definition: Definition) -> Iterator[tuple[str, str]]:
    """Every channel a ladder of the definition pages through, with where it is (``escalation.notify[0]``)."""
    ladders: list[tuple[str, list[str], list[EscalationLevel]]] = []
    if definition.escalation is not None:
        ladders.append(("escalation", definition.escalation.notify, definition.escalation.levels))
    ladders += [
        (f"steps[{i}]", s.notify, s.levels) for i, s in enumerate(definition.steps) if isinstance(s, EscalateStep)
    ]
    for at, notify, levels in ladders:
        for i, channel in enumerate(notify):
            yield f"{at}.notify[{i}]", channel
        for j, level in enumerate(levels):
            for i, channel in enumerate(level.notify or []):
                yield f"{at}.levels[{j}].notify[{i}]", channel


def ladder_targets(definition: Definition) -> Iterator[tuple[str, Target]]:
    """Every target of every ladder in the definition, with where it is (``escalation.levels[0].targets[1]``)."""
    ladders: list[tuple[str, list[EscalationLevel]]] = []
    if definition.escalation is not None:
        ladders.append(("escalation.levels", definition.escalation.levels))
    ladders += [(f"steps[{i}].levels", s.levels) for i, s in enumerate(definition.steps) if isinstance(s, EscalateStep)]
    for at, levels in ladders:
        for i, level in enumerate(levels):
            for j, target in enumerate(level.targets):
                yield f"{at}[{i}].targets[{j}]", target


def _policies(definition: Definition) -> Iterator[tuple[str, str]]:
    names: set[str] = set()
    for i, policy in enumerate(definition.sla):
        if policy.name in names:
            yield f"sla[{i}].name", f"'{policy.name}' is used by an earlier policy"
        names.add(policy.name)
        if not policy.dues():
            yield f"sla[{i}]", "give at least one of acknowledge_within, resolve_within, coordinate_within"
        if policy.when is not None:
            yield from _cel(policy.when, f"sla[{i}].when")
    if definition.escalation is not None:
        if definition.escalation.when is not None:
            yield from _cel(definition.escalation.when, "escalation.when")
        yield from _levels(definition.escalation.levels, "escalation.levels")
        yield from _channels(definition.escalation.notify, "escalation.notify")


def _cel(source: str, at: str) -> Iterator[tuple[str, str]]:
    try:
        compile_cel(source)
    except ExpressionError as exc:
        yield at, f"not a CEL expression: {exc}"


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _shape(steps: dict[str, Step], start: str, where: dict[str, str]) -> Iterator[tuple[str, str]]:
    """No cycles (a step runs at most once per run) and no step that nothing reaches."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(key: str) -> Iterator[tuple[str, str]]:
        state[key] = 1
        for target in steps[key].successors():
            if target not in steps:
                continue
            if state.get(target) == 1:
                yield where[key], f"goes back to '{target}': a workflow cannot loop"
            elif target not in state:
                yield from visit(target)
        state[key] = 2

    yield from visit(start)
    for key in steps:
        if key not in state:
            yield where[key], "no step leads here"
