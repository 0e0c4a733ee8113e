"""A customer administrator, JavaScript on, finds "Unplanned downtime escalation" in the template
gallery (htmx narrows the cards as the search is typed), reads its page, enables it for the plant
with the connections made beforehand through the API (a Slack channel, a CMMS, an ERP), and the
critical machine alarm sent next through the events API starts a run that the run timeline shows. Every page
passes axe; the gallery and the enable form are the screenshots in ``docs/screenshots``."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DevServer, fill_sign_in, serious_accessibility_violations
from tests.browser.plant_traffic import ALARM, API_HOST, customer_key, customer_url

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PORTAL_HOST = "northwind.localhost"
TEMPLATE = "unplanned-downtime-escalation"
ASSET = "ACME-DCM-01"


def _connection(server: DevServer, key: str, type_: str, **body: Any) -> None:
    made = httpx.post(
        customer_url(server, "/outbound-connections/"),
        headers=customer_key(server),
        json={"key": key, "name": f"Plant {key}", "type": type_, **body},
    )
    assert made.status_code == 201, made.text


def _connections_for_the_template(server: DevServer) -> None:
    """What the template binds: a channel that can notify, a CMMS and an ERP (vendors never reached here:
    the run is followed, not its calls)."""
    _connection(server, "maintenance_chat", "slack", secrets={"webhook_url": "https://hooks.slack.com/services/T/B/x"})
    _connection(
        server, "plant_cmms", "cmms", config={"base_url": "https://cmms.example.com/api"}, secrets={"token": "t0ken"}
    )
    _connection(
        server,
        "plant_erp",
        "erp",
        config={"base_url": "https://erp.example.com/api", "auth": "api_key", "plant": "LYON"},
        secrets={"api_key": "k3y"},
    )


def _critical_alarm(server: DevServer) -> str:
    """A critical alarm of the die-casting machine, as its PLC would send it; the template's run it starts
    (the demo's own machine-alarm workflow starts too, and is left alone)."""
    event = {
        "specversion": "1.0",
        "id": f"ev-{uuid.uuid4().hex}",
        "source": "urn:plc:die-casting",
        "type": ALARM,
        "subject": f"DCM-{uuid.uuid4().hex[:4]}",
        "severity": "critical",
        "assetid": ASSET,
        "data": {"code": "E17", "message": "Spindle seized", "state": "raised"},
    }
    headers = {**customer_key(server), "content-type": "application/cloudevents+json"}
    sent = httpx.post(server.url(API_HOST, "/api/v1/events"), json=event, headers=headers)
    assert sent.status_code == 201, sent.text
    runs = customer_url(server, "/runs/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = httpx.get(runs, headers=customer_key(server), params={"workflow_key": TEMPLATE}).json()["items"]
        if found:
            return str(found[0]["id"])
        time.sleep(0.2)
    raise AssertionError(f"no run of {TEMPLATE} after 30 s")


def test_an_admin_enables_a_template_from_the_gallery_and_an_event_runs_it(browser: Any, dev_server: DevServer) -> None:
    _connections_for_the_template(dev_server)
    admin = dev_server.login("customer_admin")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(dev_server.url(PORTAL_HOST, "/login"))
        fill_sign_in(page, admin)
        expect(page.get_by_role("heading", name=re.compile("^Signed in as"))).to_be_visible()

        page.get_by_role("navigation", name="Main", exact=True).get_by_role("link", name="Workflows").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Workflow templates")
        cards = page.locator("ul.gallery > li")
        expect(cards).to_have_count(8)
        page.screenshot(path=str(ARTIFACTS / "customer-template-gallery.png"), full_page=True)
        assert serious_accessibility_violations(page) == []
        # htmx: typing narrows the cards in place, and the address follows (a search stays a link).
        with page.expect_request(re.compile(r"/admin/templates\?q=downtime")) as searched:
            page.get_by_label("Search templates").fill("downtime")
        assert searched.value.headers.get("hx-request") == "true"
        expect(cards).to_have_count(1)
        expect(page).to_have_url(re.compile(r"/admin/templates\?q=downtime"))
        page.get_by_role("link", name="Unplanned downtime escalation").click()

        expect(page.get_by_role("heading", level=1)).to_have_text("Unplanned downtime escalation")
        expect(page.get_by_role("img", name=re.compile("^Steps of Unplanned downtime escalation"))).to_be_visible()
        expect(page.locator('svg.run-graph g.node[data-step="work_order"]')).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "customer-template-detail.png"), full_page=True)
        assert serious_accessibility_violations(page) == []
        page.get_by_role("link", name="Enable Unplanned downtime escalation").click()

        expect(page.get_by_role("heading", level=1)).to_have_text("Enable Unplanned downtime escalation")
        # Each binding offers only the connections that can do what it calls; one fits each here.
        expect(page.get_by_label("Maintenance channel")).to_have_value("maintenance_chat")
        expect(page.get_by_label("Maintenance system (CMMS)")).to_have_value("plant_cmms")
        expect(page.get_by_label("ERP (open orders)")).to_have_value("plant_erp")
        expect(page.get_by_label("Maintenance system (CMMS)").locator("option")).to_have_count(2)  # and the blank
        plant = page.locator("fieldset", has=page.get_by_text("Sites", exact=True)).locator("input[type=checkbox]")
        expect(plant).to_have_count(1)
        plant.check()
        page.screenshot(path=str(ARTIFACTS / "customer-template-enable.png"), full_page=True)
        assert serious_accessibility_violations(page) == []
        page.get_by_label("Acknowledge within (seconds)").fill("30")
        page.get_by_role("button", name="Enable", exact=True).click()

        # Refused in place: the message under its field, what was typed kept.
        acknowledge = page.get_by_label("Acknowledge within (seconds)")
        expect(acknowledge).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#param-acknowledge_seconds-error")).to_have_text("30 is less than the minimum of 60")
        expect(plant).to_be_checked()
        acknowledge.fill("600")
        page.get_by_role("button", name="Enable", exact=True).click()

        expect(page.get_by_role("heading", level=1)).to_have_text("Enabled workflows")
        expect(page.get_by_role("status")).to_contain_text("Enabled Unplanned downtime escalation for")
        row = page.locator("tbody tr", has_text=TEMPLATE)
        expect(row).to_contain_text("Active")
        expect(row).to_contain_text("cmms: plant_cmms")
        assert serious_accessibility_violations(page) == []

        run_id = _critical_alarm(dev_server)
        row.get_by_role("link", name=f"Runs of {TEMPLATE}").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Runs")
        page.locator(f'a[href="/operations/runs/{run_id}"]').click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Unplanned downtime escalation")
        expect(page.locator("#run-live dl.facts")).to_contain_text(TEMPLATE)
        expect(page.locator('svg.run-graph g.node[data-step="notify_maintenance"]')).not_to_have_class(
            re.compile(r"status-none"), timeout=15_000
        )
        page.screenshot(path=str(ARTIFACTS / "customer-template-run.png"), full_page=True)
    finally:
        context.close()

    deployments = httpx.get(customer_url(dev_server, "/deployments/"), headers=customer_key(dev_server)).json()
    [made] = [d for d in deployments if d["key"] == TEMPLATE]
    assert {p["name"]: (p["value"], p["source"]) for p in made["params"]}["acknowledge_seconds"] == (600, "deployment")
    assert made["bindings"] == {"chat": "maintenance_chat", "cmms": "plant_cmms", "erp": "plant_erp"}
    assert len(made["site_ids"]) == 1
