"""A spec made into a connector type: its settings (the REST adapter's and the spec's own), the secrets
its authentications need, and per capability a handler that renders the request, sends it on the REST
path (credentials, the idempotency key, one token refresh after a 401), maps failures and returns the
typed outputs. Everything that can be wrong in a spec is found here, when it loads, not on a call."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

import jmespath
import msgspec
from jmespath.exceptions import JMESPathError

from andon.connectors.egress import EgressResponse
from andon.connectors.outbound.adapters import templates
from andon.connectors.outbound.adapters.fields import make_struct, struct_name
from andon.connectors.outbound.adapters.spec import AdapterSpec, CapabilitySpec, ErrorRule, RequestSpec, SpecError
from andon.connectors.outbound.errors import ConnectorError, from_status, retry_after
from andon.connectors.outbound.rest import REST, RestConfig, RestRequest, reach_check, send
from andon.connectors.outbound.types import Capability, ConnectorType, Using
from andon.platform.engine.capabilities import INVALID
from andon.platform.engine.expressions import ExpressionError

_FIELD_AT = re.compile(r"at `\$\.([A-Za-z0-9_]+)")


def _jmespath(source: str, where: str) -> Any:
    try:
        return jmespath.compile(source)
    except JMESPathError as exc:
        raise SpecError(f"{where}: not a JMESPath expression {source!r} ({exc})") from None


def _template_strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield value, where
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from _template_strings(item, f"{where}[{number}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _template_strings(item, f"{where}.{key}")


def _check_templates(value: Any, where: str, names: Mapping[str, Any]) -> None:
    for source, at in _template_strings(value, where):
        try:
            templates.check(source, names)
        except ExpressionError as exc:
            raise SpecError(f"{at}: {exc}") from None


def _json(response: EgressResponse) -> tuple[Any, bool]:
    try:
        return response.json(), True
    except msgspec.DecodeError:
        return None, False


@dataclass(frozen=True, slots=True)
class _Rule:
    status: frozenset[int]
    when: Any
    kind: str
    message: Any

    @classmethod
    def of(cls, rule: ErrorRule, where: str) -> _Rule:
        return cls(
            frozenset(rule.status),
            _jmespath(rule.when, f"{where}.when") if rule.when else None,
            rule.kind,
            _jmespath(rule.message, f"{where}.message") if rule.message else None,
        )

    def failure(self, system: str, response: EgressResponse, document: Any, readable: bool) -> ConnectorError | None:
        if self.status and response.status not in self.status:
            return None
        if self.when is not None and not (readable and self.when.search(document)):
            return None
        said = self.message.search(document) if self.message is not None and readable else None
        detail = str(said) if said not in (None, "") else response.snippet()
        return ConnectorError(
            f"{system} answered {response.status}: {detail}"[:1000], self.kind, retry_after=retry_after(response)
        )


@dataclass(frozen=True, slots=True)
class _Output:
    name: str
    path: Any
    source: str | None
    value: str | None


class SpecCapability:
    """One capability of a spec: a handler with everything compiled."""

    def __init__(self, spec: AdapterSpec, name: str, capability: CapabilitySpec, where: str) -> None:
        self.name = name
        self.request = capability.request
        self.inputs: type[msgspec.Struct] = _struct(
            struct_name(spec.key, name, "inputs"), capability.inputs, f"{where}.inputs"
        )
        self.outputs: type[msgspec.Struct] = _struct(
            struct_name(spec.key, name, "outputs"), capability.outputs, f"{where}.outputs"
        )
        names = _names(spec, capability)
        _check_request(capability.request, f"{where}.request", names)
        self.picks: list[_Output] = []
        for output_name, output in capability.outputs.items():
            at = f"{where}.outputs.{output_name}"
            if output.value is not None:
                _check_templates(output.value, f"{at}.value", {**names, "answer": ()})
            path = _jmespath(output.path, f"{at}.path") if output.path is not None else None
            self.picks.append(_Output(output_name, path, output.path, output.value))
        self.rules = tuple(_Rule.of(rule, f"{where}.errors[{n}]") for n, rule in enumerate(capability.errors)) + tuple(
            _Rule.of(rule, f"$.errors[{n}]") for n, rule in enumerate(spec.errors)
        )

    async def __call__(self, using: Using, inputs: msgspec.Struct) -> dict[str, Any]:
        context = {
            "inputs": msgspec.to_builtins(inputs),
            "config": msgspec.to_builtins(using.config),
            "idempotency_key": using.idempotency_key,
        }
        try:
            request = _render(self.request, context)
        except ExpressionError as exc:
            raise ConnectorError(f"{self.name}: the request cannot be made from these inputs: {exc}", INVALID) from None
        response = await send(using, request)
        document, readable = _json(response)
        self._refuse_failures(using.name, response, document, readable)
        return self._outputs(using.name, context, response, document)

    def _refuse_failures(self, system: str, response: EgressResponse, document: Any, readable: bool) -> None:
        """The spec's rules first (a vendor may fail inside a 200), then what the status itself means."""
        for rule in self.rules:
            failure = rule.failure(system, response, document, readable)
            if failure is not None:
                raise failure
        failure = from_status(system, response)
        if failure is not None:
            raise failure
        if not readable:
            raise ConnectorError(
                f"{system} answered {response.status} with something that is not JSON: {response.snippet()}", INVALID
            )

    def _outputs(
        self, system: str, context: Mapping[str, Any], response: EgressResponse, document: Any
    ) -> dict[str, Any]:
        picked: dict[str, Any] = {}
        problems: list[str] = []
        for pick in self.picks:
            if pick.path is not None:
                picked[pick.name] = pick.path.search(document)
                continue
            try:
                picked[pick.name] = templates.value(pick.value, {**context, "answer": document})
            except ExpressionError as exc:
                picked[pick.name] = None
                problems.append(f"output {pick.name} cannot be made from it ({exc})")
        try:
            typed = msgspec.convert(picked, self.outputs, strict=False)
        except msgspec.ValidationError as exc:
            problems.insert(0, f"{exc}{self._source(exc)}")
        else:
            if not problems:
                answer: dict[str, Any] = msgspec.to_builtins(typed)
                return answer
        # Not retryable: the same request gets the same unexpected answer until someone looks at it.
        raise ConnectorError(
            f"{system}'s answer to {self.name} is not what its API documents: {'; '.join(problems)}; "
            f"the answer began {response.snippet(120)}"[:1000],
            INVALID,
        )

    def _source(self, exc: msgspec.ValidationError) -> str:
        found = _FIELD_AT.search(str(exc))
        pick = next((p for p in self.picks if found and p.name == found.group(1)), None)
        return f" (output {pick.name} is read from {pick.source!r})" if pick is not None and pick.source else ""


def _struct(name: str, fields: Mapping[str, Any], where: str) -> type[msgspec.Struct]:
    try:
        made: type[msgspec.Struct] = make_struct(name, fields)
        msgspec.json.schema(made)  # a constraint msgspec cannot express fails here, not on a call
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: {exc}") from None
    return made


def _names(spec: AdapterSpec, capability: CapabilitySpec) -> dict[str, Any]:
    return {
        "inputs": tuple(capability.inputs),
        "config": (*RestConfig.__struct_fields__, *spec.config),
        "idempotency_key": (),
    }


def _check_request(request: RequestSpec, where: str, names: Mapping[str, Any]) -> None:
    _check_templates(request.path, f"{where}.path", names)
    _check_templates(request.query, f"{where}.query", names)
    _check_templates(request.headers, f"{where}.headers", names)
    _check_templates(request.body, f"{where}.body", names)


def _render(request: RequestSpec, context: Mapping[str, Any]) -> RestRequest:
    return RestRequest(
        method=request.method,
        path=templates.path(request.path, context),
        query=templates.strings(request.query, context),
        headers=templates.strings(request.headers, context),
        json=templates.value(request.body, context) if request.body is not None else None,
    )


def _config(spec: AdapterSpec) -> type[msgspec.Struct]:
    auth: Any = Literal[tuple(dict.fromkeys(spec.auth))]
    try:
        made: type[msgspec.Struct] = make_struct(
            struct_name(spec.key, "config"), spec.config, base=RestConfig, extra=[("auth", auth, spec.auth[0])]
        )
        msgspec.json.schema(made)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"$.config: {exc}") from None
    return made


def connector_type(spec: AdapterSpec) -> ConnectorType:
    """The connector type a spec declares; SpecError (naming the field) when it cannot be one."""
    config = _config(spec)
    capabilities = {
        name: SpecCapability(spec, name, capability, f"$.capabilities.{name}")
        for name, capability in spec.capabilities.items()
    }
    probe = spec.check or RequestSpec(method="GET", path="")
    _check_request(probe, "$.check", {"config": _names(spec, CapabilitySpec(title="", request=probe))["config"]})

    async def check(using: Using) -> list[tuple[str, bool, str]]:
        context = {"config": msgspec.to_builtins(using.config)}
        return await reach_check(_render(probe, context))(using)

    auths = [SimpleNamespace(auth=kind) for kind in spec.auth]
    return ConnectorType(
        key=spec.key,
        title=spec.title,
        description=spec.description,
        config=config,
        secrets=tuple(s for s in REST.secrets if any(s.needed_when(a) for a in auths)),
        capabilities={
            name: Capability(name, spec.capabilities[name].title, made.inputs, made)
            for name, made in capabilities.items()
        },
        check=check,
    )
