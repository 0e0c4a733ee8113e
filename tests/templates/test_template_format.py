"""The template format: the built-in catalog checks clean, and every kind of mistake is refused with
its line and path (in the checker, the CLI and the API)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from andon.platform.cli.main import cli
from andon.templates_catalog.builtin import builtin_templates, catalog_files
from andon.templates_catalog.dsl.load import TemplateError, built_definition, defaults, parse
from tests.tenants.factories import World, auth

DOWNTIME = next(p for p in catalog_files() if p.stem == "unplanned-downtime-escalation").read_text()


def _problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(TemplateError) as refused:
        parse(text, "t.yaml")
    return [(p.path, p.line, p.message) for p in refused.value.problems]


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_catalog_has_the_eight_scenarios_and_each_checks_clean() -> None:
    found = builtin_templates()
    assert set(found) == {
        "unplanned-downtime-escalation",
        "quality-deviation-response",
        "supplier-delay-management",
        "field-issue-feedback-loop",
        "spare-parts-replenishment",
        "engineering-change-communication",
        "shift-handover",
        "customer-order-risk",
    }
    for template, _ in found.values():
        assert template.triggers and template.requires and template.workflow["steps"]


@pytest.mark.parametrize(
    ("change", "path", "needle", "message"),
    [
        (
            ("kind: lookup\n      title: Look up", "kind: lookupx\n      title: Look up"),
            "workflow.steps[1].kind",
            "kind: lookupx",
            "Invalid value 'lookupx'",
        ),
        (
            ("event.severity in params.severities", "event.severity in ("),
            "triggers[0].when",
            "when: event.severity in (",
            "not a CEL expression",
        ),
        (
            ("default: HIGH", "default: URGENT"),
            "parameters.properties.work_order_priority.default",
            "default: URGENT",
            "'URGENT' is not one of",
        ),
        (
            ('"@messages.assess"', '"@messages.nope"'),
            "workflow.steps[4].instructions",
            "@messages.nope",
            "no message 'nope'",
        ),
        (
            ("capability: erp.lookup_open_orders", "capability: mes.lookup_open_orders"),
            "workflow.steps[3].capability",
            "mes.lookup_open_orders",
            "'mes' is not a binding in requires",
        ),
        (
            ("capability: cmms.create_work_order", "capability: cmms.close_work_order"),
            "workflow.steps[2].capability",
            "cmms.close_work_order",
            "does not list the capability 'close_work_order'",
        ),
        (
            ("timeout_seconds: 28800", "timeout_seconds: -5"),
            "workflow.steps[5].timeout_seconds",
            "timeout_seconds: -5",
            "Expected `float` > 0.0",
        ),
        (
            ("on_timeout: still_down", "on_timeout: nowhere"),
            "workflow.steps[5]",
            "on_timeout: nowhere",
            "goes to 'nowhere', which is not a step",
        ),
        (
            ('"@params.work_order_priority"', '"@params.missing"'),
            "workflow.steps[2].inputs.priority",
            "@params.missing",
            "no parameter 'missing'",
        ),
        (
            ("event_type: dev.andon.downtime.started.v1", "event_type: dev.andon.nope.v1"),
            "triggers[1].event_type",
            "dev.andon.nope.v1",
            "unknown event type",
        ),
    ],
)
def test_each_mistake_is_refused_with_its_path_and_line(
    change: tuple[str, str], path: str, needle: str, message: str
) -> None:
    assert change[0] in DOWNTIME
    text = DOWNTIME.replace(change[0], change[1], 1)
    found = _problems(text)
    assert any(p == path and message in m for p, _, m in found), found
    line = next(line for p, line, _ in found if p == path)
    # The reported line is the value's own, or (for a whole step) the step's first line just above it.
    assert line is not None and 0 <= _line(text, needle) - line <= 12


def test_yaml_errors_and_repeated_keys_name_the_line() -> None:
    [(path, line, message)] = _problems(DOWNTIME.replace("icon: wrench", "icon: wrench\nicon: gear"))
    assert path == "" and line == _line(DOWNTIME, "icon: wrench") + 1 and "appears twice" in message
    [(_, line, message)] = _problems("template: x\nsummary: [unclosed\nname: y\n")
    assert line is not None and "not valid YAML" in message
    [(_, _, message)] = _problems("- just\n- a list\n")
    assert "a template is a mapping" in message


def test_a_parameter_standing_in_for_a_value_needs_a_default() -> None:
    text = DOWNTIME.replace("      default: 300\n", "", 1)
    found = _problems(text)
    assert (
        "workflow.sla[0].acknowledge_within",
        "the parameter 'acknowledge_seconds' stands in for a value here, so it needs a default",
    ) in [(p, m) for p, _, m in found]


def test_a_deployment_fills_placeholders_and_binds_connections() -> None:
    template, _ = builtin_templates()["unplanned-downtime-escalation"]
    params = {**defaults(template.parameters), "acknowledge_seconds": 120, "work_order_priority": "MEDIUM"}
    built = built_definition(
        template, params, messages={"page": "Custom page"}, bindings={"cmms": "maximo", "chat": "line3_slack"}
    )
    steps = {s["key"]: s for s in built["steps"]}
    assert built["sla"][0]["acknowledge_within"] == 120
    assert built["escalation"]["levels"][0]["targets"] == [{"role": "technician"}]
    assert steps["work_order"]["capability"] == "maximo.create_work_order"
    assert steps["work_order"]["inputs"]["priority"] == "MEDIUM"
    assert steps["notify_maintenance"]["capability"] == "line3_slack.notify"
    assert steps["notify_maintenance"]["inputs"]["text"] == "Custom page"
    assert steps["orders"]["capability"] == "erp.lookup_open_orders"  # not bound: left as it was
    # The template itself is untouched by a deployment.
    assert template.workflow["sla"][0]["acknowledge_within"] == "@params.acknowledge_seconds"


def test_the_command_validates_files_and_lists_the_catalog(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(cli, ["templates", "validate", *map(str, catalog_files())])
    assert good.exit_code == 0 and good.output.count(": ok (") == 8
    bad = tmp_path / "bad.yaml"
    bad.write_text(DOWNTIME.replace("default: HIGH", "default: URGENT"))
    refused = runner.invoke(cli, ["templates", "validate", str(bad), str(catalog_files()[0])])
    assert refused.exit_code == 1
    assert (
        f"{bad}:{_line(bad.read_text(), 'default: URGENT')}: parameters.properties.work_order_priority.default"
        in refused.output
    )
    assert "1 of 2 file(s) refused" in refused.output
    listed = runner.invoke(cli, ["templates", "list"])
    assert listed.exit_code == 0 and len(listed.output.splitlines()) == 8 and "shift-handover" in listed.output


@pytest.mark.anyio
async def test_the_api_lists_shows_and_checks_templates(api: httpx.AsyncClient, world: World) -> None:
    key = auth(world.a.customer.key)
    listed = (await api.get("/api/v1/templates/", headers=key)).json()
    assert len(listed) == 8 and {t["source"] for t in listed} == {"catalog"}
    quality = (await api.get("/api/v1/templates/", params={"category": "quality"}, headers=key)).json()
    assert [t["key"] for t in quality] == ["quality-deviation-response"]
    assert [t["key"] for t in (await api.get("/api/v1/templates/", params={"q": "HANDOVER"}, headers=key)).json()] == [
        "shift-handover"
    ]
    shown = (await api.get("/api/v1/templates/unplanned-downtime-escalation", headers=auth(world.a.key))).json()
    assert shown["parameters"]["properties"]["acknowledge_seconds"]["default"] == 300
    assert {b["name"] for b in shown["requires"]} == {"chat", "cmms", "erp"}
    assert shown["steps"][0] == {
        "key": "notify_maintenance",
        "kind": "action",
        "title": "Tell maintenance",
        "next": ["history"],
    }
    assert shown["yaml"] == DOWNTIME
    missing = await api.get("/api/v1/templates/no-such-template", headers=key)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")

    schema = (await api.get("/api/v1/templates/schema", headers=key)).json()
    assert "Definition" in schema["$defs"] and schema["$defs"]["Template"]["properties"]["workflow"]["$ref"]

    verdict = (await api.post("/api/v1/templates/check", json={"yaml": DOWNTIME}, headers=key)).json()
    assert verdict["ok"] and verdict["template"]["source"] == "draft"
    bad = DOWNTIME.replace("default: HIGH", "default: URGENT")
    verdict = (await api.post("/api/v1/templates/check", json={"yaml": bad}, headers=key)).json()
    assert not verdict["ok"]
    assert verdict["errors"] == [
        {
            "field": "parameters.properties.work_order_priority.default",
            "line": _line(bad, "default: URGENT"),
            "message": "'URGENT' is not one of ['HIGH', 'MEDIUM', 'LOW']",
        }
    ]
    assert (await api.get("/api/v1/templates/")).status_code == 401
