"""Adapter specs: the shipped ones are connector types whose inputs' JSON Schema the API serves; a bad
spec file is refused when it loads, naming the file and the field to fix; a partner's spec file is a
working connector type without code; templates cannot walk out of a path segment."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from andon.connectors.outbound.adapters import templates
from andon.connectors.outbound.adapters.loader import SPECS, load, load_folder
from andon.connectors.outbound.adapters.spec import SpecError
from andon.platform.engine.expressions import ExpressionError
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio

SHIPPED = {
    "cmms": ["create_work_order", "get_work_order", "lookup_asset_history"],
    "servicenow": ["create_ticket", "update_ticket", "add_comment"],
    "erp": ["update_material_status", "lookup_open_orders", "place_quality_hold", "create_purchase_requisition"],
    "crm": ["create_case", "update_case", "lookup_customer_orders"],
    "qms": ["open_nonconformance", "open_capa"],
    "supplier_portal": ["message_supplier", "lookup_asn_status"],
}


def _definition(schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return found


async def test_the_api_lists_each_adapter_with_the_json_schema_of_its_capabilities_inputs(
    api: httpx.AsyncClient, world: World
) -> None:
    r = await api.get("/api/v1/connector-types", headers=auth(world.a.customer.key))
    assert r.status_code == 200
    by_key = {t["key"]: t for t in r.json()}
    for key, capabilities in SHIPPED.items():
        assert [c["name"] for c in by_key[key]["capabilities"]] == capabilities, key
        for capability in by_key[key]["capabilities"]:
            inputs = _definition(capability["inputs_schema"])
            assert inputs["type"] == "object" and inputs["additionalProperties"] is False, (key, capability)

    servicenow = by_key["servicenow"]
    ticket = _definition(next(c for c in servicenow["capabilities"] if c["name"] == "create_ticket")["inputs_schema"])
    assert ticket["required"] == ["short_description"]
    assert ticket["properties"]["short_description"] == {
        "title": "Summary",
        "type": "string",
        "minLength": 1,
        "maxLength": 160,
    }
    assert ticket["properties"]["urgency"]["default"] == "2"
    assert ticket["properties"]["urgency"]["anyOf"][0]["enum"] == ["1", "2", "3"]
    config = _definition(servicenow["config_schema"])
    assert config["properties"]["auth"] == {"enum": ["basic", "oauth2_client_credentials"], "default": "basic"}
    assert config["properties"]["table"]["anyOf"][0]["pattern"] == "^[a-z][a-z0-9_]{0,79}$"
    assert [s["name"] for s in servicenow["secrets"]] == ["password", "client_secret"]

    cmms = by_key["cmms"]
    work_order = _definition(next(c for c in cmms["capabilities"] if c["name"] == "create_work_order")["inputs_schema"])
    assert sorted(work_order["required"]) == ["asset_id", "title"]
    assert work_order["properties"]["asset_id"]["type"] == "integer"
    assert work_order["properties"]["due_date"]["anyOf"][0]["format"] == "date-time"
    erp = _definition(by_key["erp"]["config_schema"])
    assert "plant" in erp["required"] and "base_url" in erp["required"]


def _cmms() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((SPECS / "cmms.json").read_text())
    return spec


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            spec = spec[part]
        spec[last] = value

    return change


WO = "capabilities.create_work_order"
BAD_SPECS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown field", _set(f"{WO}.verb", "POST"), "unknown field `verb` - at `$.capabilities.create_work_order`"),
    ("method", _set(f"{WO}.request.method", "FETCH"), "at `$.capabilities.create_work_order.request.method`"),
    ("auth", _set("auth", ["kerberos"]), "at `$.auth[0]`"),
    (
        "jmespath",
        _set(f"{WO}.outputs.work_order_id.path", "id[?"),
        "$.capabilities.create_work_order.outputs.work_order_id.path: not a JMESPath expression",
    ),
    (
        "misspelt input",
        _set(f"{WO}.request.body.assetId", "{{ inputs.asset }}"),
        "$.capabilities.create_work_order.request.body.assetId: '{{ inputs.asset }}': inputs has no 'asset'",
    ),
    (
        "unknown name",
        _set(f"{WO}.request.path", "/v1/{{ secrets.token }}"),
        "$.capabilities.create_work_order.request.path: '/v1/{{ secrets.token }}': unknown name 'secrets'",
    ),
    ("template syntax", _set(f"{WO}.request.body.title", "{{ inputs.title "), "request.body.title"),
    (
        "enum on an integer",
        _set(f"{WO}.inputs.asset_id", {"type": "integer", "enum": ["1"]}),
        "enum: a non-empty list, for a string field only - at `$.capabilities.create_work_order.inputs.asset_id`",
    ),
    (
        "default of the wrong type",
        _set(f"{WO}.inputs.priority", {"type": "string", "enum": ["LOW"], "default": "URGENT"}),
        "$.capabilities.create_work_order.inputs: priority.default:",
    ),
    (
        "rule that matches everything",
        _set("errors", [{"kind": "failed"}]),
        "an error rule needs status or when (else it matches every answer) - at `$.errors[0]`",
    ),
    (
        "output without a source",
        _set(f"{WO}.outputs.status", {"type": "string"}),
        "at `$.capabilities.create_work_order.outputs.status`",
    ),
    ("key unlike the file", _set("key", "maintenance"), "$.key is 'maintenance', but must be the file's name, 'cmms'"),
]


@pytest.mark.parametrize(("change", "words"), [b[1:] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS])
def test_a_bad_spec_is_refused_naming_the_file_and_the_field(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], words: str
) -> None:
    spec = copy.deepcopy(_cmms())
    change(spec)
    path = tmp_path / "cmms.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(SpecError) as refused:
        load(path)
    message = str(refused.value)
    assert message.startswith("cmms.json: ") and words in message, message


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cmms.json").write_text('{"key": "cmms",')
    with pytest.raises(SpecError, match=r"^cmms\.json: not JSON"):
        load_folder(tmp_path)


def test_a_partners_spec_file_is_a_connector_type(tmp_path: Path) -> None:
    spec = _cmms()
    spec["key"] = "acme_cmms"
    (tmp_path / "acme_cmms.json").write_text(json.dumps(spec))
    (made,) = load_folder(tmp_path)
    assert made.key == "acme_cmms" and list(made.capabilities) == SHIPPED["cmms"]
    assert made.inputs_schema("create_work_order")["$ref"] == "#/$defs/AcmeCmmsCreateWorkOrderInputs"


def test_values_in_a_path_stay_inside_their_segment() -> None:
    context = {"inputs": {"id": "a/b?c=1#d"}}
    assert templates.path("/api/x/{{ inputs.id }}", context) == "/api/x/a%2Fb%3Fc%3D1%23d"
    for escape in ("..", "."):
        with pytest.raises(ExpressionError, match="cannot be a path segment"):
            templates.path("/api/x/{{ inputs.id }}", {"inputs": {"id": escape}})


def test_a_whole_expression_keeps_its_type_and_nulls_are_left_out() -> None:
    body = {"n": "{{ inputs.n }}", "text": "n={{ inputs.n }}", "gone": "{{ inputs.none }}", "list": ["{{ inputs.l }}"]}
    context = {"inputs": {"n": 3, "none": None, "l": [1, 2]}}
    assert templates.value(body, context) == {"n": 3, "text": "n=3", "list": [[1, 2]]}
    assert templates.strings(
        {"flag": "{{ inputs.f }}", "empty": "{{ inputs.none }}"}, {"inputs": {"f": True, "none": None}}
    ) == {"flag": "true"}
