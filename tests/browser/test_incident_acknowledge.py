"""A plant supervisor, JavaScript on, opens an incident from the operations console and acknowledges
it: htmx posts the button's form and swaps in the page it leads to, whose timeline says who did it."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DevServer, fill_sign_in, serious_accessibility_violations
from tests.browser.plant_traffic import open_incident

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PORTAL_HOST = "northwind.localhost"


def test_a_supervisor_opens_an_incident_and_acknowledges_it(browser: Any, dev_server: DevServer) -> None:
    incident = open_incident(dev_server)
    sven = dev_server.login("plant_supervisor")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(dev_server.url(PORTAL_HOST, "/login"))
        fill_sign_in(page, sven)
        expect(page.get_by_role("heading", name=re.compile("^Signed in as"))).to_be_visible()

        page.get_by_role("navigation", name="Main", exact=True).get_by_role("link", name="Incidents").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Incidents")
        page.get_by_role("link", name=incident["title"]).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(incident["title"])
        expect(page.get_by_text("2 waiting to be acknowledged", exact=False)).to_be_visible()

        with page.expect_response(re.compile(r"/acknowledge$")) as posted:
            page.get_by_role("button", name="Acknowledge all 2 alerts").click()
        assert posted.value.request.headers.get("hx-request") == "true"  # htmx, not a full page load
        expect(page.get_by_role("status")).to_have_text("Acknowledged 2 alert(s).")
        timeline = page.locator("ol.timeline")
        expect(timeline.get_by_text(f"Acknowledged by user {sven['email']}")).to_have_count(2)
        expect(page.get_by_role("button", name=re.compile("^Acknowledge all"))).to_have_count(0)
        assert page.url.endswith(f"/operations/incidents/{incident['id']}")  # swapped in place
        page.screenshot(path=str(ARTIFACTS / "supervisor-acknowledged-incident.png"), full_page=True)
        assert serious_accessibility_violations(page) == []
    finally:
        context.close()

    key = {"Authorization": f"Bearer {dev_server.creds['api_keys']['customers']['acme-castings']}"}
    me = httpx.get(dev_server.url("127.0.0.1", "/api/v1/me"), headers=key).json()
    detail = httpx.get(
        dev_server.url("127.0.0.1", f"/api/v1/customers/{me['customer_id']}/incidents/{incident['id']}"), headers=key
    ).json()
    assert {a["status"] for a in detail["alerts"]} == {"acknowledged"}
    assert {a["acknowledged_by"] for a in detail["alerts"]} == {f"user {sven['email']}"}
