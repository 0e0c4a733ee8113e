"""A customer administrator, JavaScript on, adds an outbound connection (type first, then its form) and
checks it: htmx posts the check's form and swaps the result in place; every page passes axe."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DevServer, fill_sign_in, serious_accessibility_violations

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PORTAL_HOST = "northwind.localhost"


def test_an_admin_adds_a_slack_connection_and_checks_it(browser: Any, dev_server: DevServer) -> None:
    admin = dev_server.login("customer_admin")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(dev_server.url(PORTAL_HOST, "/login"))
        fill_sign_in(page, admin)
        expect(page.get_by_role("heading", name=re.compile("^Signed in as"))).to_be_visible()

        page.goto(dev_server.url(PORTAL_HOST, "/admin/outbound"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Outbound connections")
        assert serious_accessibility_violations(page) == []
        page.get_by_role("link", name="Add an outbound connection").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Add an outbound connection")
        assert serious_accessibility_violations(page) == []
        page.get_by_role("link", name="Slack", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Add a Slack connection")
        assert serious_accessibility_violations(page) == []
        page.get_by_label("Key").fill("browser_chat")
        page.get_by_label("Name", exact=True).fill("Browser chat")
        page.get_by_role("button", name="Add").click()

        expect(page.get_by_role("heading", level=1)).to_have_text("Browser chat")
        expect(page.get_by_text("Added Browser chat.")).to_be_visible()
        detail_url = page.url.split("?", 1)[0]
        with page.expect_response(re.compile(r"/check$")) as posted:
            page.get_by_role("button", name="Check connection").click()
        assert posted.value.request.headers.get("hx-request") == "true"  # htmx, not a full page load
        expect(page.locator("#check [role=status]")).to_contain_text("not set: webhook_url")
        assert page.url.split("?", 1)[0] == detail_url  # swapped in place
        page.screenshot(path=str(ARTIFACTS / "admin-outbound-checked.png"), full_page=True)
        assert serious_accessibility_violations(page) == []

        page.get_by_role("link", name="Remove Browser chat…").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Remove Browser chat?")
        page.get_by_role("button", name="Remove Browser chat").click()
        expect(page.get_by_text("Removed Browser chat")).to_be_visible()
    finally:
        context.close()
