"""A plant supervisor, JavaScript on, follows the demo's machine-alarm workflow: a critical alarm starts
a run that asks for an approval; the run's page draws its step graph and polls while it is under way;
the supervisor signs the approval from the inbox with a reason and the password, and the run's page
shows the signature as evidence."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DevServer, fill_sign_in, serious_accessibility_violations
from tests.browser.plant_traffic import critical_alarm_waiting_for_approval, customer_key, customer_url

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PORTAL_HOST = "northwind.localhost"


def test_a_supervisor_follows_a_run_and_signs_its_approval_from_the_inbox(browser: Any, dev_server: DevServer) -> None:
    approval = critical_alarm_waiting_for_approval(dev_server)
    run_id = approval["run_id"]
    sven = dev_server.login("plant_supervisor")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(dev_server.url(PORTAL_HOST, "/login"))
        fill_sign_in(page, sven)
        expect(page.get_by_role("heading", name=re.compile("^Signed in as"))).to_be_visible()

        main_nav = page.get_by_role("navigation", name="Main", exact=True)
        main_nav.get_by_role("link", name="Runs").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Runs")
        assert serious_accessibility_violations(page) == []
        page.locator(f'a[href="/operations/runs/{run_id}"]').click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Machine alarm response")
        graph = page.get_by_role("img", name=re.compile("^Steps of Machine alarm response"))
        expect(graph).to_be_visible()
        expect(page.locator('svg.run-graph g.node.status-waiting[data-step="stop"]')).to_have_count(1)
        expect(page.locator('svg.run-graph g.node.status-succeeded[data-step="assess"]')).to_have_count(1)
        # Under way, the page asks by itself whether anything changed (htmx polling).
        with page.expect_request(re.compile(rf"/operations/runs/{run_id}/changes\?since="), timeout=10_000) as polled:
            pass
        assert polled.value.headers.get("hx-request") == "true"
        page.screenshot(path=str(ARTIFACTS / "supervisor-run-waiting.png"), full_page=True)
        assert serious_accessibility_violations(page) == []

        main_nav.get_by_role("link", name="Inbox").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
        card = page.locator(f"#task-{approval['id']}")
        expect(card.get_by_role("heading", name=approval["title"])).to_be_visible()
        expect(card.get_by_text("Your signature means:")).to_contain_text("Machine stop approved")
        page.screenshot(path=str(ARTIFACTS / "supervisor-inbox.png"), full_page=True)
        assert serious_accessibility_violations(page) == []
        card.get_by_label("Reason").fill("die temperature confirmed on the gauge")
        card.get_by_label("Your password").fill("not my password")
        card.get_by_role("button", name="Approve").click()
        expect(card.get_by_text(re.compile("^The password does not match"))).to_be_visible()
        expect(card.get_by_label("Your password")).to_have_attribute("aria-invalid", "true")
        card.get_by_label("Your password").fill(sven["password"])
        card.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("status")).to_have_text(f"Approved: {approval['title']}. Your signature is recorded.")
        expect(page.locator(f"#task-{approval['id']}")).to_have_count(0)

        page.goto(dev_server.url(PORTAL_HOST, f"/operations/runs/{run_id}"))
        evidence = page.locator(f"#task-{approval['id']}")
        expect(evidence).to_contain_text(sven["email"])
        expect(evidence).to_contain_text("Machine stop approved")
        expect(evidence).to_contain_text("Reason: die temperature confirmed on the gauge")
        expect(evidence).to_contain_text("Identity proved by password")
        expect(page.locator('svg.run-graph g.node[data-step="stop"]')).to_have_class(
            re.compile(r"status-succeeded"), timeout=15_000
        )
        page.screenshot(path=str(ARTIFACTS / "supervisor-run-approved.png"), full_page=True)

        # The technician's check is done elsewhere; the open page shows the run finish by itself.
        tasks = httpx.get(
            customer_url(dev_server, "/tasks/"), headers=customer_key(dev_server), params={"status": "open"}
        )
        check = next(t for t in tasks.json()["items"] if t["run_id"] == run_id and t["step_key"] == "check")
        done = httpx.post(
            customer_url(dev_server, f"/tasks/{check['id']}/complete"),
            headers=customer_key(dev_server),
            json={"outcome": {"result": "done"}, "note": "die cooled down"},
        )
        assert done.status_code == 200, done.text
        status = page.locator("#run-live dl.facts dd").first
        expect(status).to_contain_text("Succeeded", timeout=15_000)
        expect(page.locator('svg.run-graph g.node.status-succeeded[data-step="check"]')).to_have_count(1)
        expect(page.locator("#run-live [hx-trigger^='every']")).to_have_count(0)  # finished: no more polling
    finally:
        context.close()

    detail = httpx.get(customer_url(dev_server, f"/tasks/{approval['id']}"), headers=customer_key(dev_server)).json()
    assert detail["task"]["status"] == "done"
    assert [(d["decision"], d["method"]) for d in detail["decisions"]] == [("approve", "password")]
