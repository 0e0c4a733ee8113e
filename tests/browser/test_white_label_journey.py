"""The white-label acceptance journey in a real browser, with and without JavaScript.

Northwind's partner admin signs in on Northwind's portal host, brands the portal (product name,
colours, a logo), onboards a customer with its plant CSV; the customer's administrator, in a browser
of their own, follows the invitation link from the dev mailbox (it points at Northwind's host), sets a
password, signs in there and sees Northwind's new name and logo, with no trace of Andon or of the
other partner. Each key page is screenshotted and, with JavaScript on, passes axe (no serious or
critical violations)."""

from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DevServer, serious_accessibility_violations

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HOST = "northwind.localhost"
PLANT = """kind,external_id,name,parent_external_id
site,OSL,Oslo plant,
line,OSL-L1,Moulding line,OSL
asset,OSL-M1,Moulder 1,OSL-L1
asset,OSL-M2,Moulder 2,OSL-L1
"""


# Both colours carry white text, so both must reach 4.5:1 against white (these reach 7:1 or more).
@dataclass(frozen=True)
class Look:
    primary: str
    accent: str
    logo_rgb: tuple[int, int, int]


BRANDS = {True: Look("#1b4332", "#7b2cbf", (200, 30, 30)), False: Look("#5c1a1b", "#1d4e89", (30, 30, 200))}
INVITATION_LINK = re.compile(r"https?://[^\s<>\"']+/invitations/[A-Za-z0-9_\-]+")


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _logo_png(path: Path, rgb: tuple[int, int, int]) -> Path:
    """A small logo: a solid block of one colour, easy to recognise once re-encoded by the server."""
    Image.new("RGB", (160, 48), rgb).save(path, format="PNG")
    return path


def _sign_in(page: Any, dev_server: DevServer, email: str, password: str) -> None:
    page.goto(dev_server.url(HOST, "/login"))
    page.get_by_label("Work e-mail").fill(email)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Signed in as"))).to_be_visible()


def _check_axe(page: Any, javascript: bool) -> None:
    if javascript:
        assert serious_accessibility_violations(page) == [], page.url


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_white_label_journey(browser: Any, dev_server: DevServer, tmp_path: Path, javascript: bool) -> None:
    mode = "js" if javascript else "no-js"
    shot = f"{ARTIFACTS}/white-label-{mode}"
    run = secrets.token_hex(3)
    product = f"Northwind Forge {mode.upper()} {run}"
    colours = BRANDS[javascript]
    admin = dev_server.login("partner_admin")

    # --- Northwind's partner admin brands the portal -------------------------------------------
    partner = browser.new_context(java_script_enabled=javascript)
    page = partner.new_page()
    _sign_in(page, dev_server, admin["email"], admin["password"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Branding").click()
    expect(page.get_by_role("heading", name="Your brand")).to_be_visible()
    old_logo = page.locator("header a.product img")
    old_logo_src = old_logo.get_attribute("src") if old_logo.count() else None
    _check_axe(page, javascript)
    page.screenshot(path=f"{shot}-1-branding.png", full_page=True)

    page.get_by_label("Product name").fill(product)
    # type=color inputs take a lowercase #rrggbb through fill(), with JavaScript on or off.
    page.get_by_label("Primary colour (header)").fill(colours.primary)
    page.get_by_label("Accent colour (buttons)").fill(colours.accent)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved: your customers see the new brand now.")
    expect(page).to_have_title(re.compile(re.escape(product)))
    expect(page.locator("header a.product")).to_have_text(product)
    expect(page.locator("header")).to_have_css("background-color", _rgb(colours.primary))
    expect(page.get_by_label("Primary colour (header)")).to_have_value(colours.primary)
    expect(page.get_by_label("Accent colour (buttons)")).to_have_value(colours.accent)

    logo = _logo_png(tmp_path / "northwind-logo.png", colours.logo_rgb)
    logo_form = page.locator("form[action='/partner/branding/logo']")
    logo_form.locator("input[type=file]").set_input_files(str(logo))
    logo_form.locator("button[type=submit]").click()
    expect(page.get_by_role("status")).to_have_text("Logo updated.")
    header_logo = page.locator("header a.product img")
    expect(header_logo).to_have_attribute("src", re.compile(r"^/brand/[0-9a-f-]+/logo\.png\?v=\d+$"))
    logo_src = header_logo.get_attribute("src")
    assert logo_src and logo_src != old_logo_src
    expect(page.get_by_role("img", name="Current logo")).to_have_attribute("src", logo_src)
    # (Playwright's own HTTP client cannot resolve *.localhost names; the logo is public anyway.)
    served = httpx.get(f"http://127.0.0.1:{dev_server.port}{logo_src}", headers={"host": HOST})
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/png")
    with Image.open(io.BytesIO(served.content)) as img:  # the server re-encodes; the pixels are ours
        assert img.convert("RGB").getpixel((10, 10)) == colours.logo_rgb
    _check_axe(page, javascript)
    page.screenshot(path=f"{shot}-2-branded.png", full_page=True)

    # --- ... onboards a customer and imports its plant -----------------------------------------
    slug = f"fjell-{mode}-{run}"
    invitee = f"ingrid@{slug}.example"
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="Onboard a customer").click()
    expect(page.get_by_role("heading", name="Onboard a customer")).to_be_visible()
    _check_axe(page, javascript)
    page.get_by_label("Customer name").fill(f"Fjell Moulding {mode} {run}")
    page.get_by_label("Short name").fill(slug)
    page.get_by_label("Time zone of its plants").fill("Europe/Oslo")
    page.get_by_label("Its administrator's name").fill("Ingrid")
    page.get_by_label("Its administrator's e-mail").fill(invitee)
    page.get_by_role("button", name="Create and invite").click()
    expect(page.get_by_text("the invitation is on its way")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Fjell Moulding {mode} {run}")

    csv = tmp_path / "plant.csv"
    csv.write_text(PLANT)
    page.get_by_label("Plant file (CSV)").set_input_files(str(csv))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", name="Imported")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(re.compile(r"\b1 sites\W+1 lines\W+2 assets\b"))
    _check_axe(page, javascript)
    page.screenshot(path=f"{shot}-3-onboarded.png", full_page=True)
    partner.close()

    # --- the invited administrator, in a browser of their own -----------------------------------
    customer = browser.new_context(java_script_enabled=javascript)
    page = customer.new_page()
    page.goto(dev_server.url(HOST, "/dev/mailbox"))
    mail = page.locator("article").filter(has_text=f"To {invitee}")
    expect(mail).to_have_count(1)
    expect(mail.get_by_role("heading")).to_have_text(f"You are invited to {product}")
    text = mail.locator("pre").inner_text()
    assert "Andon" not in text and "Bluefin" not in text, text
    assert product in text, text
    links = INVITATION_LINK.findall(text)
    assert len(links) == 1, text
    link = urlsplit(links[0])
    # The link leads to the partner's own portal, not to the platform's address.
    assert (link.scheme, link.hostname, link.port) == ("http", HOST, dev_server.port), links[0]
    page.screenshot(path=f"{shot}-4-mailbox.png", full_page=True)

    page.goto(links[0])
    expect(page.get_by_role("heading", name="Welcome: choose your password")).to_be_visible()
    expect(page).to_have_title(re.compile(re.escape(product)))
    html = page.content()
    assert "Andon" not in html and "Bluefin" not in html
    _check_axe(page, javascript)
    page.screenshot(path=f"{shot}-5-set-password.png", full_page=True)
    password = "fjord-" + secrets.token_urlsafe(12)
    page.get_by_label("New password").fill(password)
    page.get_by_role("button", name="Save password").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert urlsplit(page.url).hostname == HOST

    _sign_in(page, dev_server, invitee, password)
    expect(page.get_by_role("heading", level=1)).to_have_text("Signed in as Ingrid")
    expect(page).to_have_title(re.compile(re.escape(product)))
    expect(page.locator("header a.product")).to_have_text(product)
    expect(page.locator("header a.product img")).to_have_attribute("src", logo_src)
    expect(page.locator("header")).to_have_css("background-color", _rgb(colours.primary))
    html = page.content()
    assert "Andon" not in html and "Bluefin" not in html
    _check_axe(page, javascript)
    page.screenshot(path=f"{shot}-6-customer-admin.png", full_page=True)
    customer.close()
