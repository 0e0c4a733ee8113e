"""The test bench: a template draft walked against a sample event before it is published, nothing
called and nothing stored. Decisions and expressions are the engine's own (CEL conditions and
values, Jinja inputs, JMESPath selections, the same branching); the outside world is a fake: each
capability answers what the bench is given for it (default ``{}``), people complete their tasks,
approvals go the way asked (default approved), timers pass and awaited events arrive. The timeline
shows each step with its rendered inputs, its output and where it went next, or the error that
would fail the run."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import jmespath

from andon.platform.engine.definition import (
    ActionStep,
    ApprovalStep,
    EscalateStep,
    JoinStep,
    LookupStep,
    Step,
    SubflowStep,
    TaskStep,
    TimerStep,
    WaitForEventStep,
    compile_definition,
)
from andon.platform.engine.executor import PURE, default_next, kind_of, pure_outcome
from andon.platform.engine.expressions import ExpressionError, evaluate, render
from andon.templates_catalog.dsl.format import Template
from andon.templates_catalog.dsl.load import built_definition, defaults

MAX_STEPS = 500


@dataclass(slots=True)
class BenchStep:
    key: str
    kind: str
    title: str
    status: Literal["succeeded", "failed"]
    inputs: Any = None
    output: Any = None
    next: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(slots=True)
class BenchResult:
    steps: list[BenchStep]
    # "succeeded", "failed" (a step failed), "filtered" (the trigger would not start it),
    # "not_triggered" (no trigger of the event's type)
    outcome: str
    params: dict[str, Any]
    error: str | None = None


def _event(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample as a workflow sees an event (``event_view``), with what a sender may leave out."""
    view: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "source": "test-bench",
        "event_id": "sample",
        "type": "",
        "subject": None,
        "severity": None,
        "dedup_key": None,
        "site_ref": None,
        "asset_ref": None,
        "time": None,
        "site_id": None,
        "line_id": None,
        "asset_id": None,
        "data": {},
        "extensions": {},
    }
    view.update(sample)
    return view


def _answer(step: ActionStep | LookupStep, binding_answers: dict[str, Any]) -> Any:
    return binding_answers.get(step.capability, {})


def simulate(
    template: Template,
    sample_event: dict[str, Any],
    *,
    params: dict[str, Any] | None = None,
    answers: dict[str, Any] | None = None,
    decisions: dict[str, str] | None = None,
) -> BenchResult:
    merged = {**defaults(template.parameters), **(params or {})}
    event = _event(sample_event)
    context: dict[str, Any] = {
        "event": event,
        "alert": None,
        "params": merged,
        "steps": {},
        "run": {"id": "test-bench", "workflow": template.template, "started_at": "", "started_by": "test-bench"},
    }
    trigger = next((t for t in template.triggers if t.event_type == event["type"]), None)
    if template.triggers and trigger is None:
        types = ", ".join(t.event_type for t in template.triggers)
        return BenchResult(
            [], "not_triggered", merged, f"the template starts on {types}, not {event['type'] or '(no type)'}"
        )
    if trigger is not None and trigger.when:
        try:
            if not evaluate(trigger.when, context):
                return BenchResult(
                    [], "filtered", merged, f"the trigger's condition is false for this event: {trigger.when}"
                )
        except ExpressionError as exc:
            return BenchResult([], "filtered", merged, f"the trigger's condition cannot read this event: {exc}")
    compiled = compile_definition(built_definition(template, merged))
    answers, decisions = answers or {}, decisions or {}
    timeline: list[BenchStep] = []
    done: set[str] = set()
    queue: deque[str] = deque([compiled.start])
    while queue and len(timeline) < MAX_STEPS:
        step = compiled.step(queue.popleft())
        if step.key in done:
            continue
        if isinstance(step, JoinStep) and not all(k in done for k in step.after):
            continue  # the last branch to arrive starts the join
        entry = _walk(step, context, answers, decisions)
        timeline.append(entry)
        done.add(step.key)
        if entry.status == "failed":
            return BenchResult(timeline, "failed", merged, f"{step.key}: {entry.note}")
        context["steps"] = {**context["steps"], step.key: entry.output}
        queue.extend(entry.next)
    return BenchResult(timeline, "succeeded", merged)


def _walk(step: Step, context: dict[str, Any], answers: dict[str, Any], decisions: dict[str, str]) -> BenchStep:
    entry = BenchStep(step.key, kind_of(step), step.title, "succeeded", next=default_next(step))
    try:
        if isinstance(step, PURE):
            outcome = pure_outcome(step, context)
            if outcome.status == "failed":
                entry.status, entry.note = "failed", outcome.error or "failed"
                return entry
            entry.output = outcome.output
            if outcome.next is not None:
                entry.next = outcome.next
        elif isinstance(step, ActionStep | LookupStep):
            entry.inputs = render(step.inputs, context)
            answer = _answer(step, answers)
            entry.note = f"{step.capability} answered by the bench"
            if isinstance(step, LookupStep):
                selected = jmespath.search(step.select, answer) if step.select is not None else answer
                entry.output = selected
                if step.on_empty and selected in (None, "", [], {}):
                    entry.next, entry.note = [step.on_empty], entry.note + "; empty, so on_empty"
            else:
                entry.output = answer
        elif isinstance(step, ApprovalStep):
            decision = decisions.get(step.key, "approved")
            entry.inputs = {"title": render(step.title or step.key, context), "role": step.role}
            entry.output = {"decision": decision, "reason": "test bench"}
            entry.note = f"{step.approvals} signature(s) of {step.role}: {decision}"
            if decision == "rejected":
                if not step.on_reject:
                    entry.status, entry.note = "failed", "rejected, and the step has no on_reject path"
                    return entry
                entry.next = [step.on_reject]
            elif decision == "expired":
                if not step.on_expired:
                    entry.status, entry.note = "failed", "expired, and the step has no on_expired path"
                    return entry
                entry.next = [step.on_expired]
        elif isinstance(step, TaskStep):
            entry.inputs = {
                "title": render(step.title or step.key, context),
                "instructions": render(step.instructions, context),
                "role": step.role,
            }
            entry.output = {"outcome": "done"}
            entry.note = f"a {step.role} completes it"
        elif isinstance(step, TimerStep):
            entry.note = f"waits {step.seconds:g} s"
        elif isinstance(step, WaitForEventStep):
            entry.inputs = {"correlation": render(step.correlation, context)}
            entry.note = f"waits for {step.event_type}; the bench lets it arrive"
        elif isinstance(step, EscalateStep):
            entry.note = f"starts a ladder of {len(step.levels)} level(s)"
        elif isinstance(step, SubflowStep):
            entry.inputs = render(step.inputs, context)
            entry.note = f"starts the workflow '{step.workflow}'"
            entry.output = {"status": "succeeded"}
    except ExpressionError as exc:
        entry.status, entry.note = "failed", str(exc)
    return entry
