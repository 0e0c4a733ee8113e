"""In a real browser, with and without JavaScript: Northwind's partner admin signs in on Northwind's
own portal host, sees only Northwind's brand, onboards a customer with a plant from a CSV, and the
main pages pass an automated accessibility check (no serious or critical violations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DevServer, fill_sign_in, serious_accessibility_violations

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PLANT = """kind,external_id,name,parent_external_id
site,TRD,Trondheim plant,
line,TRD-L1,Filling line,TRD
asset,TRD-F1,Filler 1,TRD-L1
"""


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_partner_onboards_a_customer(browser: Any, dev_server: DevServer, tmp_path: Path, javascript: bool) -> None:
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    shot = ARTIFACTS / ("js" if javascript else "no-js")
    host = "northwind.localhost"
    admin = dev_server.login("partner_admin")

    page.goto(dev_server.url(host, "/login"))
    assert "Northwind Ops Center" in page.title()
    assert "Andon" not in page.content() and "Bluefin" not in page.content()
    if javascript:
        assert serious_accessibility_violations(page) == []
    page.screenshot(path=f"{shot}-1-login.png", full_page=True)

    fill_sign_in(page, admin)
    page.get_by_role("link", name="Customers").click()
    expect(page.get_by_role("link", name="Acme Precision Castings")).to_be_visible()
    assert "Corvid" not in page.content()  # another partner's customer
    if javascript:
        assert serious_accessibility_violations(page) == []
    page.screenshot(path=f"{shot}-2-customers.png", full_page=True)

    slug = "fjord-dairy-js" if javascript else "fjord-dairy-nojs"
    page.get_by_role("link", name="Onboard a customer").click()
    page.get_by_label("Customer name").fill("Fjord Dairy" if javascript else "Fjord Dairy (no JS)")
    page.get_by_label("Short name").fill(slug)
    page.get_by_label("Time zone of its plants").fill("Europe/Oslo")
    page.get_by_label("Its administrator's name").fill("Frida")
    page.get_by_label("Its administrator's e-mail").fill(f"frida@{slug}.example")
    page.get_by_role("button", name="Create and invite").click()
    expect(page.get_by_text("the invitation is on its way")).to_be_visible()

    csv = tmp_path / "plant.csv"
    csv.write_text(PLANT)
    page.get_by_label("Plant file (CSV)").set_input_files(str(csv))
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_role("heading", name="The file is clean")).to_be_visible()
    page.get_by_label("Plant file (CSV)").set_input_files(str(csv))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", name="Imported")).to_be_visible()
    assert "1 assets" in page.content()
    rows = page.locator("section table").first.locator("tbody tr").all_inner_texts()
    assert [r.split() for r in rows] == [
        ["site", "1", "0", "0"],
        ["area", "0", "0", "0"],
        ["line", "1", "0", "0"],
        ["asset", "1", "0", "0"],
    ]
    if javascript:
        assert serious_accessibility_violations(page) == []
    page.screenshot(path=f"{shot}-3-imported.png", full_page=True)
    context.close()


def test_brand_preview_updates_while_typing(browser: Any, dev_server: DevServer) -> None:
    """With JavaScript, htmx refreshes the preview as the partner types; nothing is saved."""
    context = browser.new_context()
    page = context.new_page()
    admin = dev_server.login("partner_admin")
    page.goto(dev_server.url("northwind.localhost", "/login?next=/partner/branding"))
    fill_sign_in(page, admin)
    page.get_by_label("Product name").fill("Northwind Live Preview")
    page.locator("#preview").get_by_text("Northwind Live Preview").wait_for(timeout=5000)
    assert serious_accessibility_violations(page) == []
    page.screenshot(path=f"{ARTIFACTS}/branding-preview.png", full_page=True)
    page.goto(dev_server.url("northwind.localhost", "/login"))
    assert "Northwind Ops Center" in page.title()  # the preview saved nothing
    context.close()
