"""Northwind's partner engineer, JavaScript on, forks "Unplanned downtime escalation" into the library,
breaks the YAML and sees the problem by its line (Check, through htmx, saves nothing), fixes it,
rewrites a message in the form view, publishes 1.1.0 and finds it in the library; the customer-facing
template then carries the new message. Every page passes axe; the editor is a screenshot."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DevServer, fill_sign_in, serious_accessibility_violations
from tests.browser.plant_traffic import API_HOST

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PORTAL_HOST = "northwind.localhost"
TEMPLATE = "unplanned-downtime-escalation"
MESSAGE = "Northwind Ops: {{ event.asset_ref }} is down"


def test_an_engineer_forks_fixes_brands_and_publishes_a_template(browser: Any, dev_server: DevServer) -> None:
    engineer = dev_server.login("partner_engineer")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(dev_server.url(PORTAL_HOST, "/login"))
        fill_sign_in(page, engineer)
        page.get_by_role("navigation", name="Main", exact=True).get_by_role("link", name="Template library").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Template library")
        assert serious_accessibility_violations(page) == []

        page.get_by_label("Catalog template").select_option(label="Unplanned downtime escalation")
        page.get_by_role("button", name="Fork", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Unplanned downtime escalation")
        expect(page.get_by_role("status")).to_contain_text("Forked Unplanned downtime escalation 1.0.0")
        editor = page.get_by_label("Template YAML")
        original = editor.input_value()
        assert original.startswith(f"template: {TEMPLATE}\nversion: 1.0.0\n")
        assert serious_accessibility_violations(page) == []

        # Tab indents inside the editor instead of leaving it; the line numbers follow the text.
        gutter = page.locator("pre.gutter")
        lines = original.count("\n") + 1
        expect(gutter).to_contain_text(f"\n{lines}\n")
        editor.press("End")
        editor.press("Control+End")
        editor.press("Tab")
        expect(editor).to_be_focused()
        assert editor.input_value() == original + "  "

        # A message key indented one space short: YAML cannot read the document.
        broken = original.replace("messages:\n  page_title:", "messages:\n page_title:")
        bad_line = broken.split("\n").index("  page: >-") + 1
        editor.fill(broken)
        with page.expect_request(re.compile(r"/partner/library/[0-9a-f-]+/check$")) as checked:
            page.get_by_role("button", name="Check", exact=True).click()
        assert checked.value.headers.get("hx-request") == "true"
        problems = page.locator("#problems li")
        expect(problems).to_have_count(1)
        expect(problems.first).to_contain_text(f"Line {bad_line}")
        expect(problems.first).to_contain_text("not valid YAML")
        expect(gutter.locator("span.bad")).to_have_text(str(bad_line))
        assert editor.input_value() == broken  # the text is the engineer's, untouched
        page.screenshot(path=str(ARTIFACTS / "partner-template-editor-error.png"), full_page=True)
        # The problem's line link puts the cursor on that line.
        problems.first.get_by_role("link", name=f"Line {bad_line}").click()
        expect(editor).to_be_focused()
        start = page.evaluate("document.getElementById('yaml').selectionStart")
        assert broken[:start].count("\n") == bad_line - 1

        # Saving it is refused the same way, and the text comes back as typed.
        page.get_by_role("button", name="Save draft").click()
        expect(page.get_by_role("alert")).to_contain_text("Not saved")
        expect(page.locator("#problems li").first).to_contain_text(f"Line {bad_line}")
        expect(page.get_by_label("Template YAML")).to_have_value(broken)

        page.get_by_label("Template YAML").fill(original)
        page.get_by_role("button", name="Check", exact=True).click()
        expect(page.locator("#problems")).to_contain_text("No problems found")
        page.get_by_role("button", name="Save draft").click()
        expect(page.get_by_role("status")).to_contain_text("Draft 1.0.0 saved.")

        # The form view: the message in the partner's own words.
        page.get_by_role("navigation", name="Editor").get_by_role("link", name="Form").click()
        title = page.get_by_label("Page title", exact=True)
        expect(title).to_have_value("Downtime: {{ event.asset_ref or event.subject or 'unknown asset' }}")
        assert serious_accessibility_violations(page) == []
        title.fill(MESSAGE)
        page.get_by_role("button", name="Save draft").click()
        expect(page.get_by_role("status")).to_contain_text("Draft 1.0.0 saved from the form.")
        expect(page.get_by_label("Page title", exact=True)).to_have_value(MESSAGE)

        page.get_by_label("Version to publish").fill("1.1.0")
        page.get_by_role("button", name="Publish", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text(f"Published {TEMPLATE} 1.1.0")
        page.screenshot(path=str(ARTIFACTS / "partner-template-editor.png"), full_page=True)

        page.get_by_role("link", name="Back to the template library").click()
        row = page.locator(f'tr[data-template="{TEMPLATE}"]')
        expect(row).to_contain_text("1.1.0")
        expect(row).to_contain_text("Published")
        assert serious_accessibility_violations(page) == []
    finally:
        context.close()

    # What customers now enable from Northwind's library speaks in Northwind's words.
    key = dev_server.creds["api_keys"]["partners"]["northwind"]
    published = httpx.get(
        dev_server.url(API_HOST, f"/api/v1/templates/{TEMPLATE}"),
        params={"source": "partner"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert published.status_code == 200, published.text
    assert published.json()["version"] == "1.1.0"
    assert published.json()["messages"]["page_title"] == MESSAGE
