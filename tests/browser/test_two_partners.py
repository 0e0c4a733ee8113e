"""Two partners side by side in one browser, each on its own portal host: each sees its own brand
and only its own customers; one partner cannot open the other's customer, and gets a page in its own
brand saying so (never JSON, never the other's data); an unknown address is a branded page too."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DevServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@dataclass(frozen=True)
class Portal:
    host: str
    product: str
    header_rgb: str  # the brand's primary colour, as the browser computes it
    email: str
    password: str
    customers: tuple[str, ...]
    other_words: tuple[str, ...]  # the other partner's name, product and customers: never shown here


NORTHWIND_WORDS = ("Northwind", "Acme Precision Castings", "Helix Packaging", "Stuttgart", "Milwaukee")
BLUEFIN_WORDS = ("Bluefin", "Corvid", "Detroit")


@pytest.fixture(scope="module")
def portals(dev_server: DevServer) -> dict[str, Portal]:
    """Northwind's partner admin from the demo, and a partner admin for Bluefin (the demo has none):
    Bluefin adds one to itself through the API with its own key, as a partner may."""
    base = f"http://127.0.0.1:{dev_server.port}/api/v1"
    key = {"authorization": f"Bearer {dev_server.creds['api_keys']['partners']['bluefin']}"}
    partners = httpx.get(f"{base}/partners", headers=key).raise_for_status().json()
    items = partners["items"] if isinstance(partners, dict) else partners
    (bluefin_id,) = [p["id"] for p in items if p["slug"] == "bluefin"]
    password = "bluefin-" + secrets.token_urlsafe(12)
    email = f"bea.admin.{secrets.token_hex(3)}@bluefin.example"
    httpx.post(
        f"{base}/partners/{bluefin_id}/users",
        headers=key,
        json={"email": email, "display_name": "Bea Admin", "password": password, "grants": [{"role": "partner_admin"}]},
    ).raise_for_status()
    northwind = dev_server.login("partner_admin")
    return {
        "northwind": Portal(
            "northwind.localhost",
            "Northwind Ops Center",
            "rgb(14, 59, 92)",  # #0e3b5c
            northwind["email"],
            northwind["password"],
            ("Acme Precision Castings", "Helix Packaging"),
            BLUEFIN_WORDS,
        ),
        "bluefin": Portal(
            "bluefin.localhost",
            "Bluefin Connect",
            "rgb(74, 25, 66)",  # #4a1942
            email,
            password,
            ("Corvid Automotive Components",),
            NORTHWIND_WORDS,
        ),
    }


@pytest.fixture
def signed_in(browser: Any, dev_server: DevServer, portals: dict[str, Portal]) -> Iterator[dict[str, Any]]:
    """A page per partner, each in its own browser context (its own cookies), signed in on its host."""
    contexts = []
    pages = {}
    for name, portal in portals.items():
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.goto(dev_server.url(portal.host, "/login?next=/partner/customers"))
        page.get_by_label("Work e-mail").fill(portal.email)
        page.get_by_role("button", name="Continue").click()
        page.get_by_label("Password").fill(portal.password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
        pages[name] = page
    yield pages
    for context in contexts:
        context.close()


def _assert_wears_only(page: Any, portal: Portal) -> None:
    expect(page).to_have_title(re.compile(re.escape(portal.product)))
    expect(page.locator("header a.product")).to_have_text(portal.product)
    expect(page.locator("header")).to_have_css("background-color", portal.header_rgb)
    html = page.content()
    assert "Andon" not in html
    leaked = [w for w in portal.other_words if w in html]
    assert leaked == [], f"{page.url} shows the other partner's {leaked}"


def test_each_partner_sees_its_own_brand_and_only_its_own_customers(
    signed_in: dict[str, Any], portals: dict[str, Portal]
) -> None:
    # Back and forth between the two portals, so one host's brand cannot stick to the other.
    for _ in range(2):
        for name, page in signed_in.items():
            portal = portals[name]
            page.reload()
            table = page.get_by_role("table")
            for customer in portal.customers:
                expect(table.get_by_role("link", name=customer)).to_be_visible()
            expect(table.locator("tbody tr")).to_have_count(len(portal.customers))
            _assert_wears_only(page, portal)
    for name, page in signed_in.items():
        page.screenshot(path=f"{ARTIFACTS}/two-partners-{name}-customers.png", full_page=True)

    # Searching for the other partner's customer by name finds nothing either.
    northwind = signed_in["northwind"]
    northwind.get_by_label("Search by name").fill("Corvid")
    northwind.get_by_role("button", name="Search").click()
    expect(northwind.get_by_text("No customer matches")).to_be_visible()
    bluefin = signed_in["bluefin"]
    bluefin.get_by_label("Search by name").fill("Acme")
    bluefin.get_by_role("button", name="Search").click()
    expect(bluefin.get_by_text("No customer matches")).to_be_visible()


def test_a_partner_cannot_open_the_other_partners_customer(
    signed_in: dict[str, Any], portals: dict[str, Portal], dev_server: DevServer
) -> None:
    bluefin = signed_in["bluefin"]
    bluefin.get_by_role("link", name="Corvid Automotive Components").click()
    expect(bluefin.get_by_role("heading", name="Corvid Automotive Components", level=1)).to_be_visible()
    corvid_path = re.sub(r"^https?://[^/]+", "", bluefin.url)
    assert re.fullmatch(r"/partner/customers/[0-9a-f-]{36}", corvid_path), corvid_path

    northwind = signed_in["northwind"]
    response = northwind.goto(dev_server.url(portals["northwind"].host, corvid_path))
    assert response is not None and response.status in (403, 404), response and response.status
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    expect(northwind.get_by_role("heading", level=1)).to_have_text(
        re.compile("^(There is no such page|You can't open this page)$")
    )
    _assert_wears_only(northwind, portals["northwind"])
    body = northwind.locator("body").inner_text()
    assert not body.lstrip().startswith("{") and "Traceback" not in body
    northwind.screenshot(path=f"{ARTIFACTS}/two-partners-northwind-denied.png", full_page=True)


@pytest.mark.parametrize("signed_in_first", [False, True], ids=["anonymous", "signed-in"])
def test_an_unknown_address_is_a_branded_page(
    browser: Any, dev_server: DevServer, portals: dict[str, Portal], signed_in_first: bool
) -> None:
    portal = portals["bluefin"]
    context = browser.new_context()
    page = context.new_page()
    if signed_in_first:
        page.goto(dev_server.url(portal.host, "/login"))
        page.get_by_label("Work e-mail").fill(portal.email)
        page.get_by_role("button", name="Continue").click()
        page.get_by_label("Password").fill(portal.password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name=re.compile("^Signed in as"))).to_be_visible()
    response = page.goto(dev_server.url(portal.host, "/no-such-page"))
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    expect(page.get_by_role("heading", level=1)).to_have_text("There is no such page")
    _assert_wears_only(page, portal)
    page.screenshot(
        path=f"{ARTIFACTS}/two-partners-bluefin-404-{'signed-in' if signed_in_first else 'anonymous'}.png",
        full_page=True,
    )
    context.close()


def test_a_partners_people_cannot_use_the_other_partners_portal(
    browser: Any, dev_server: DevServer, portals: dict[str, Portal]
) -> None:
    """Whatever the portal does with someone from another partner (refuse the sign-in, or send them
    to their own portal), Bluefin's portal never shows Northwind's customers in Bluefin's brand."""
    northwind = portals["northwind"]
    context = browser.new_context()
    page = context.new_page()
    page.goto(dev_server.url("bluefin.localhost", "/login?next=/partner/customers"))
    page.get_by_label("Work e-mail").fill(northwind.email)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password").fill(northwind.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("signs in at its own organisation's portal")
    page.goto(dev_server.url("bluefin.localhost", "/partner/customers"))
    expect(page.locator("main")).to_be_visible()
    page.screenshot(path=f"{ARTIFACTS}/two-partners-northwind-on-bluefin.png", full_page=True)
    if "bluefin.localhost" in page.url:
        html = page.content()
        shown = [w for w in NORTHWIND_WORDS if w in html]
        assert shown == [], f"Bluefin's portal shows Northwind's {shown}"
    context.close()


@pytest.mark.parametrize(
    "host",
    [
        "northwind.localhost",
        pytest.param("bluefin.localhost"),
        pytest.param("127.0.0.1"),
    ],
)
def test_a_password_reset_email_speaks_in_the_persons_own_partners_brand(
    browser: Any, dev_server: DevServer, host: str
) -> None:
    """Acme is Northwind's customer: wherever its administrator asks for a reset, the e-mail says
    Northwind's product name and links to Northwind's portal host."""
    carla = dev_server.login("customer_admin")
    context = browser.new_context()
    page = context.new_page()
    page.goto(dev_server.url(host, "/password-reset"))
    page.get_by_label("Work e-mail").fill(carla["email"])
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_text("a reset link is on its way").first).to_be_visible()

    page.goto(dev_server.url("northwind.localhost", "/dev/mailbox"))
    mail = page.locator("article").filter(has_text=f"To {carla['email']}").first  # newest first
    expect(mail.get_by_role("heading")).to_have_text(re.compile("^Reset your .* password$"))
    subject = mail.get_by_role("heading").inner_text()
    text = mail.locator("pre").inner_text()
    links = re.findall(r"https?://[^\s<>\"']+/password-reset/[A-Za-z0-9_\-]+", text)
    assert len(links) == 1, text
    assert (subject, urlsplit(links[0]).hostname) == ("Reset your Northwind Ops Center password", "northwind.localhost")
    assert "Bluefin" not in text and "Andon" not in text, text
    context.close()
