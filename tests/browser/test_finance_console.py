"""Northwind's partner admin, in the browser against ``andon dev``, creates a plan in its price book,
moves Acme onto it from the 2nd of this month, sees the preview split between the two plans and the
margin chart; Acme's finance person then finds the usage chart of the demo's seeded usage. Every
page passes axe."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from andon.billing.invoices.service import period_bounds
from andon.billing.usage.meters import period_of
from andon.platform.db.types import utcnow
from tests.browser.conftest import ARTIFACTS, DevServer, fill_sign_in, serious_accessibility_violations

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PORTAL_HOST = "northwind.localhost"


def test_a_partner_prices_a_plan_and_the_customer_sees_its_usage(browser: Any, dev_server: DevServer) -> None:
    start, _ = period_bounds(period_of(utcnow()))
    change_at = start + timedelta(days=1)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(dev_server.url(PORTAL_HOST, "/login"))
        fill_sign_in(page, dev_server.login("partner_admin"))
        page.get_by_role("navigation", name="Main", exact=True).get_by_role("link", name="Billing").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Billing")
        # The demo's seed: both Northwind customers on Professional, with a margin per customer.
        expect(page.locator("svg.margin-chart g.customer")).to_have_count(2)
        expect(page.locator("table.margin")).to_contain_text("Acme Precision Castings")
        assert serious_accessibility_violations(page) == []

        page.get_by_role("link", name="Price books and plans").click()
        expect(page.locator("table.plans")).to_contain_text("Professional")
        assert serious_accessibility_violations(page) == []
        page.get_by_role("link", name="New plan in Standard").click()
        page.get_by_label("Key (lower-case letters, digits, hyphens)").fill("lean")
        page.get_by_label("Name", exact=True).fill("Lean")
        page.locator("#item-0-title").fill("Platform fee")
        page.locator("#item-0-type").select_option("flat")
        page.locator("#item-0-amount").fill("99.00")
        page.locator("#item-1-title").fill("Events")
        page.locator("#item-1-meter").select_option("events.ingested")
        page.locator("#item-1-type").select_option("volume")
        page.locator("#item-1-tiers").fill("* 0.001")
        page.locator("#item-1-included").fill("many")
        page.get_by_role("button", name="Save plan").click()
        # Refused by field; what was typed comes back.
        expect(page.locator("#item-1-included-error")).to_have_text("a whole number of units")
        expect(page.locator("#item-1-tiers")).to_have_value("* 0.001")
        assert serious_accessibility_violations(page) == []
        page.locator("#item-1-included").fill("2000")
        page.get_by_role("button", name="Save plan").click()
        expect(page.get_by_role("status")).to_contain_text("Saved Lean as version 1")
        expect(page.locator("tr[data-plan=lean]")).to_contain_text("Events (volume, events.ingested)")

        page.goto(dev_server.url(PORTAL_HOST, "/partner/billing"))
        page.get_by_role("link", name="Acme Precision Castings").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Billing of Acme Precision Castings")
        page.locator("#plan").select_option(label="Standard · Lean (version 1, EUR)")
        page.locator("#at").fill(change_at.date().isoformat())
        page.get_by_role("button", name="Change plan").click()
        expect(page.get_by_role("status")).to_contain_text("Acme Precision Castings is on lean")
        preview = page.locator("table.preview")
        expect(preview).to_contain_text(f"Professional, 01 {start:%b} 00:00 to {change_at:%d %b} 00:00")
        expect(preview).to_contain_text(f"Lean, {change_at:%d %b} 00:00 to")
        expect(page.locator("svg.usage-chart g.series").first).to_be_visible()
        assert serious_accessibility_violations(page) == []
        page.screenshot(path=str(ARTIFACTS / "finance-partner-customer.png"), full_page=True)
        page.get_by_role("link", name="Billing", exact=True).first.click()
        expect(page.locator("table.margin")).to_contain_text("preview")
        page.screenshot(path=str(ARTIFACTS / "finance-partner-margin.png"), full_page=True)
    finally:
        context.close()

    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(dev_server.url(PORTAL_HOST, "/login"))
        fill_sign_in(page, dev_server.login("finance"))
        page.get_by_role("navigation", name="Main", exact=True).get_by_role("link", name="Billing").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Billing")
        expect(page.get_by_role("img", name=re.compile("Usage by meter per day"))).to_be_visible()
        meters = page.locator("svg.usage-chart g.series")
        expect(meters.filter(has=page.locator("rect"))).not_to_have_count(0)
        assert meters.count() == page.locator("table.usage-daily thead th").count() - 1
        expect(page.locator("table.preview")).to_contain_text("Lean")
        assert serious_accessibility_violations(page) == []
        page.screenshot(path=str(ARTIFACTS / "finance-customer.png"), full_page=True)
    finally:
        context.close()
