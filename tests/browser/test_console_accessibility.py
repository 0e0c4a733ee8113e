"""An accessibility and keyboard sweep of every console, in a real browser.

Each demo persona signs in on its own host (the operator on the platform's address, everyone else on
Northwind's portal) and every page its navigation offers is checked: the pages ``nav[aria-label=Main]``
links to, the detail page of the first row of each list, each "new …" form those lists link to, and
/account. On each page: axe finds nothing serious or critical; there is one ``<h1>`` and the banner,
Main navigation and main landmarks; "Skip to content" is the first Tab stop and moves focus to main;
tabbing from there reaches the focusable elements of main in DOM order, each with a visible focus
indicator; every form control in main has an accessible name. A full-page screenshot of each page goes
to ``test-artifacts/browser/consoles/``.

The pages are listed here, per persona, so that each is its own test case (a defect found is a strict
xfail of that one case, in KNOWN_DEFECTS); ``test_navigation_offers`` checks, for all ten demo
personas, the list against what the navigation and the lists actually offer, so none is missed.
Personas whose roles carry the same permissions see the same pages, which are checked once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, CHROMIUM_ARGS, DevServer, fill_sign_in, serious_accessibility_violations
from tests.browser.plant_traffic import add_connection, critical_alarm_waiting_for_approval, open_incident

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PLATFORM_HOST = "127.0.0.1"
PORTAL_HOST = "northwind.localhost"
SHOTS = ARTIFACTS / "consoles"
MAX_TAB_STOPS = 40

# What main offers to the keyboard, in DOM order (hidden ones are filtered out in the page).
FOCUSABLE = (
    "a[href], button, input:not([type=hidden]), select, textarea, details > summary, [tabindex]:not([tabindex='-1'])"
)
CONTROLS = "input:not([type=hidden]), select, textarea, button"


@dataclass(frozen=True)
class Page:
    """One page to check: ``path`` itself or, with ``first_row``, the first row's link in its list."""

    slug: str
    path: str
    first_row: bool = False


@dataclass(frozen=True)
class Console:
    host: str
    nav: tuple[str, ...]  # the Main navigation's links, /account aside
    lists: dict[str, tuple[str, ...]]  # list page -> the "new …" forms it links to (path only)
    details: tuple[str, ...]  # list pages whose first row links to a detail page
    extra: tuple[str, ...] = ()  # pages reached otherwise (the plant's tabs)


PLANT_TABS = ("/admin/plant/lines", "/admin/plant/assets")
# The operations console (events:read): plant_traffic below gives each of its lists a row.
# With runs:read the runs list too (a row: plant_traffic starts a run); with tasks:write the inbox (no table).
OPERATIONS = ("/operations/incidents", "/operations/alerts", "/operations/runs", "/operations/events")
FLOOR = ("/operations/incidents", "/operations/inbox", "/operations/alerts", "/operations/runs", "/operations/events")
OPERATIONS_LISTS: dict[str, tuple[str, ...]] = {path: () for path in OPERATIONS}
FLOOR_LISTS: dict[str, tuple[str, ...]] = {path: () for path in FLOOR}
PLANT_READ = Console(
    PORTAL_HOST,
    nav=(*FLOOR, "/admin/plant"),
    lists={**FLOOR_LISTS, "/admin/plant": (), "/admin/plant/lines": (), "/admin/plant/assets": ()},
    details=(*OPERATIONS, "/admin/plant", "/admin/plant/assets"),
    extra=PLANT_TABS,
)
PARTNER_READ = Console(
    PORTAL_HOST,
    nav=("/partner/customers",),
    lists={"/partner/customers": ()},
    details=("/partner/customers",),
)
CONSOLES: dict[str, Console] = {
    "platform_operator": Console(
        PLATFORM_HOST,
        nav=("/operator/partners", "/operator/health"),
        lists={"/operator/partners": ("/operator/partners/new",)},
        details=("/operator/partners",),
    ),
    "partner_admin": Console(
        PORTAL_HOST,
        nav=("/partner/customers", "/partner/branding", "/partner/library", "/partner/rollouts", "/partner/billing"),
        lists={"/partner/customers": ("/partner/customers/new",)},
        details=("/partner/customers",),
    ),
    # Engineers build the partner's templates and roll them out.
    "partner_engineer": Console(
        PORTAL_HOST,
        nav=("/partner/customers", "/partner/library", "/partner/rollouts"),
        lists={"/partner/customers": ()},
        details=("/partner/customers",),
    ),
    "partner_support": PARTNER_READ,
    "customer_admin": Console(
        PORTAL_HOST,
        nav=(
            *FLOOR,
            "/admin/plant",
            "/admin/users",
            "/admin/sign-in",
            "/admin/api-keys",
            "/admin/connections",
            "/admin/outbound",
            "/admin/templates",
            "/admin/billing",
            "/admin/audit",
        ),
        lists={
            **FLOOR_LISTS,
            "/admin/plant": ("/admin/plant/sites/new",),
            "/admin/plant/lines": (),
            "/admin/plant/assets": ("/admin/plant/assets/new",),
            "/admin/users": ("/admin/users/new",),
            "/admin/sign-in": ("/admin/sign-in/new",),  # the demo has no identity provider: no row
            "/admin/api-keys": ("/admin/api-keys/new",),
            "/admin/connections": ("/admin/connections/new",),
            "/admin/outbound": ("/admin/outbound/new",),  # the demo has no outbound connection: no row
            "/admin/templates": (),
            "/admin/audit": (),
        },
        details=(
            *OPERATIONS,
            "/admin/plant",
            "/admin/plant/assets",
            "/admin/users",
            "/admin/api-keys",
            "/admin/connections",
        ),
        extra=PLANT_TABS,
    ),
    "plant_supervisor": PLANT_READ,
    "technician": PLANT_READ,
    "quality_engineer": PLANT_READ,
    "finance": Console(PORTAL_HOST, nav=("/admin/billing",), lists={}, details=()),
    "auditor": Console(
        PORTAL_HOST,
        nav=(*OPERATIONS, "/admin/plant", "/admin/connections", "/admin/outbound", "/admin/templates", "/admin/audit"),
        lists={
            **OPERATIONS_LISTS,
            "/admin/plant": (),
            "/admin/plant/lines": (),
            "/admin/plant/assets": (),
            "/admin/connections": (),
            "/admin/outbound": (),
            "/admin/templates": (),
            "/admin/audit": (),
        },
        details=(*OPERATIONS, "/admin/plant", "/admin/plant/assets", "/admin/connections"),
        extra=PLANT_TABS,
    ),
}


def _slug(path: str) -> str:
    return path.strip("/").replace("/", "-") or "home"


def pages_of(console: Console) -> list[Page]:
    pages: dict[str, Page] = {}
    for path in (*console.nav, *console.extra, *console.lists):
        pages.setdefault(path, Page(_slug(path), path))
    for path in console.details:
        pages.setdefault(f"{path}#first", Page(f"{_slug(path)}-first", path, first_row=True))
    for forms in console.lists.values():
        for path in forms:
            pages.setdefault(path, Page(_slug(path), path))
    pages.setdefault("/account", Page("account", "/account"))
    return list(pages.values())


# Defects found by this sweep: (persona, page slug) -> the defect; each case is a strict xfail.
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


def _cases() -> Iterator[Any]:
    """Every page of every persona; personas whose role has the same permissions as an earlier one's
    (technician and quality engineer as plant supervisor, partner support as partner engineer) see
    the same pages, so theirs are checked once, and only their navigation is checked for them."""
    checked: list[Console] = []
    for persona, console in CONSOLES.items():
        if any(console is seen for seen in checked):
            continue
        checked.append(console)
        for page in pages_of(console):
            defect = KNOWN_DEFECTS.get((persona, page.slug))
            marks = [pytest.mark.xfail(strict=True, reason=defect)] if defect else []
            yield pytest.param(persona, page, id=f"{persona}-{page.slug}", marks=marks)


# --- one browser and one sign-in per persona for the whole module (per xdist worker) -------------


@pytest.fixture(scope="module", autouse=True)
def plant_traffic(dev_server: DevServer) -> None:
    """An incident (with its alerts and events) and a connection with deliveries, so the operations
    and connection lists have a first row and their detail pages are checked too."""
    open_incident(dev_server)
    add_connection(dev_server)
    critical_alarm_waiting_for_approval(dev_server)  # a run of the demo workflow, waiting for its approval


@pytest.fixture(scope="module")
def shared_browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module")
def signed_in(shared_browser: Any, dev_server: DevServer) -> Iterator[Any]:
    """``signed_in(persona)``: that persona's page, signed in once and reused by the module's tests
    (each test navigates afresh, which resets focus)."""
    pages: dict[str, Any] = {}

    def open_page(persona: str) -> Any:
        if persona not in pages:
            page = shared_browser.new_context().new_page()
            who = dev_server.login(persona)
            page.goto(dev_server.url(CONSOLES[persona].host, "/login"))
            fill_sign_in(page, who)
            expect(page.get_by_role("heading", name=re.compile("^Signed in as"))).to_be_visible()
            pages[persona] = page
        return pages[persona]

    yield open_page
    for page in pages.values():
        page.context.close()


def _first_row_link(page: Any) -> str | None:
    """The link in the first cell of the list's first row: that row's detail page, if it has one."""
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    href = page.evaluate(
        "() => document.querySelector('main table tbody tr')?.cells[0]?.querySelector('a[href]')?.getAttribute('href')"
    )
    return str(href) if href else None


def _open(page: Any, dev_server: DevServer, host: str, target: Page) -> str:
    """Navigate to the page to check; returns its path."""
    response = page.goto(dev_server.url(host, target.path))
    assert response is not None and response.ok, f"{target.path}: HTTP {response and response.status}"
    if target.first_row:
        href = _first_row_link(page)
        assert href, f"{target.path}: the list has no row with a link"
        response = page.goto(dev_server.url(host, href))
        assert response is not None and response.ok, f"{page.url}: HTTP {response and response.status}"
    return str(urlsplit(page.url).path)


# --- the checks ------------------------------------------------------------------------------------

_MARK_FOCUSABLE = """([selector, limit]) => {
  const main = document.querySelector('main');
  const all = [...main.querySelectorAll(selector)].filter(el =>
    !el.disabled && !el.closest('[inert]') && el.checkVisibility({visibilityProperty: true}));
  return all.slice(0, limit).map((el, i) => {
    el.dataset.tabOrder = String(i);
    return el.outerHTML.slice(0, 120);
  });
}"""

_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return {order: null, html: 'body', visible: false};
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
  const shadow = s.boxShadow && s.boxShadow !== 'none';
  return {order: el.dataset.tabOrder ?? null, html: el.outerHTML.slice(0, 120), visible: outline || !!shadow};
}"""


def _check_structure(page: Any) -> None:
    expect(page.locator("h1")).to_have_count(1)
    expect(page.get_by_role("banner")).to_have_count(1)
    expect(page.get_by_role("navigation", name="Main", exact=True)).to_have_count(1)
    expect(page.get_by_role("main")).to_have_count(1)


def _check_skip_link(page: Any) -> None:
    """Focus starts on the document: the first Tab stop is the skip link, which moves focus to main."""
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert page.evaluate(_FOCUSED)["visible"], "the focused skip link has no visible focus indicator"
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.get_by_role("main")).to_be_focused()


def _check_tab_order(page: Any) -> None:
    """From main (focused by the skip link), Tab visits main's focusable elements in DOM order,
    each with a visible focus indicator; at most MAX_TAB_STOPS of them, to stay cheap."""
    expected: list[str] = page.evaluate(_MARK_FOCUSABLE, [FOCUSABLE, MAX_TAB_STOPS])
    reached: list[str] = []
    invisible: list[str] = []
    previous = None
    presses = 0
    # A date or time input takes a Tab press per part (day, month, year, hours, minutes).
    parts = page.evaluate("() => document.querySelectorAll('main input[type^=date], main input[type=time]').length")
    while len(reached) < len(expected) and presses < len(expected) + 10 + 5 * parts:
        page.keyboard.press("Tab")
        presses += 1
        focused = page.evaluate(_FOCUSED)
        if focused["html"] == previous:  # a date input's day/month/year fields: one element
            continue
        previous = focused["html"]
        if focused["order"] != str(len(reached)):
            reached.append(f"#{len(reached)} expected {expected[len(reached)]}, got {focused['html']}")
            break
        reached.append(focused["html"])
        if not focused["visible"]:
            invisible.append(focused["html"])
    assert reached == expected, "Tab order in main differs from DOM order:\n" + "\n".join(reached[-3:])
    assert invisible == [], f"no visible focus indicator on {invisible}"


def _check_names(page: Any) -> None:
    controls = page.locator("main").locator(CONTROLS)
    unnamed = []
    for i in range(controls.count()):
        control = controls.nth(i)
        if not control.is_visible():
            continue
        try:
            expect(control).to_have_accessible_name(re.compile(r"\S"), timeout=300)
        except AssertionError:
            unnamed.append(control.evaluate("el => el.outerHTML.slice(0, 160)"))
    assert unnamed == [], f"form controls in main without an accessible name: {unnamed}"


@pytest.mark.parametrize(("persona", "target"), list(_cases()))
def test_console_page(signed_in: Any, dev_server: DevServer, persona: str, target: Page) -> None:
    page = signed_in(persona)
    path = _open(page, dev_server, CONSOLES[persona].host, target)
    page.screenshot(path=str(SHOTS / f"{persona}-{target.slug}.png"), full_page=True)
    problems: list[str] = []
    for check in (_check_structure, _check_skip_link, _check_tab_order, _check_names):
        try:
            check(page)
        except AssertionError as failed:
            problems.append(f"{check.__name__}: {failed}")
    # axe last: it injects its script, and its findings are the most detailed.
    problems += [f"axe: {v}" for v in serious_accessibility_violations(page)]
    assert problems == [], f"{persona} on {path}:\n" + "\n".join(problems)


@pytest.mark.parametrize("persona", list(CONSOLES))
def test_navigation_offers(signed_in: Any, dev_server: DevServer, persona: str) -> None:
    """The pages listed above are exactly those the persona's navigation and lists offer."""
    console = CONSOLES[persona]
    page = signed_in(persona)
    page.goto(dev_server.url(console.host, "/account"))
    nav = page.get_by_role("navigation", name="Main", exact=True).get_by_role("link")
    expect(nav.last).to_have_text("Account")
    hrefs = [str(h) for h in nav.evaluate_all("links => links.map(a => a.getAttribute('href'))")]
    assert tuple(hrefs) == (*console.nav, "/account")
    lists_seen: dict[str, tuple[str, ...]] = {}
    with_rows = []
    for path in console.lists:
        page.goto(dev_server.url(console.host, path))
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        new_forms = page.locator("main a[href*='/new']").evaluate_all(
            "links => links.map(a => new URL(a.href).pathname)"
        )
        lists_seen[path] = tuple(new_forms)
        if _first_row_link(page):
            with_rows.append(path)
        if path == "/admin/plant":
            tabs = page.get_by_role("navigation", name="Plant", exact=True).get_by_role("link")
            tab_paths = tabs.evaluate_all("links => links.map(a => a.getAttribute('href'))")
            assert tuple(t for t in tab_paths if t != path) == console.extra
    assert lists_seen == console.lists
    assert tuple(with_rows) == console.details


def test_error_page(shared_browser: Any, dev_server: DevServer) -> None:
    context = shared_browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(dev_server.url(PORTAL_HOST, "/no-such-page"))
        assert response is not None and response.status == 404
        expect(page.get_by_role("heading", level=1)).to_have_text("There is no such page")
        expect(page.get_by_role("main")).to_have_count(1)
        page.screenshot(path=str(SHOTS / "anonymous-error-404.png"), full_page=True)
        assert serious_accessibility_violations(page) == []
    finally:
        context.close()
