"""Bad uploads through the partner console, in a real browser: each is refused with a clear message
in the partner's own brand (never JSON or a stack trace), and nothing changes.

(a) an SVG logo carrying a script, (b) a 20 MB image (far over the 512 KB logo limit, and over the
server's request body limit), (c) a plant CSV with bad rows: every problem listed with its row, the
customer's plant untouched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DevServer, fill_sign_in, serious_accessibility_violations

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HOST = "northwind.localhost"
PRODUCT = "Northwind Ops Center"
NEVER = ("Andon", "Bluefin", "Traceback", "problem+json", '"status":', "Internal Server Error")

EVIL_SVG = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40">
  <script type="text/javascript">alert(document.cookie)</script>
  <rect width="120" height="40" fill="#c00"/>
</svg>
"""

# Row numbers are CSV lines, the header being line 1.
BAD_PLANT = """kind,external_id,name,parent_external_id
site,BAD-S1,A site that would be fine,
widget,BAD-W1,A kind that does not exist,BAD-S1
line,BAD-L1,A line whose parent is nowhere,NO-SUCH-AREA
asset,BAD-A1,First asset,BAD-S1
asset,BAD-A1,The same external id again,BAD-S1
"""
EXPECTED_PROBLEMS = {  # row -> (column, words the message must contain)
    "3": ("kind", "widget"),
    "4": ("parent_external_id", "NO-SUCH-AREA"),
    "6": ("external_id", "BAD-A1"),
}


@dataclass(frozen=True)
class Snapshot:
    """What a person can see of the brand: the header's name and logo, the page title."""

    product: str
    logo_src: str | None
    title: str


def _brand_on(page: Any) -> Snapshot:
    logo = page.locator("header a.product img")
    return Snapshot(
        page.locator("header a.product").inner_text().strip(),
        logo.get_attribute("src") if logo.count() else None,
        page.title(),
    )


def _assert_human_page_in_brand(page: Any) -> None:
    expect(page).to_have_title(re.compile(re.escape(PRODUCT)))
    expect(page.locator("header a.product")).to_have_text(PRODUCT)
    html = page.content()
    shown = [w for w in NEVER if w in html]
    assert shown == [], f"{page.url} shows {shown}"
    assert not page.locator("body").inner_text().lstrip().startswith("{")


@pytest.fixture
def admin_page(browser: Any, dev_server: DevServer) -> Iterator[Any]:
    """Northwind's partner admin, signed in on Northwind's portal, at the brand editor."""
    context = browser.new_context()
    page = context.new_page()
    admin = dev_server.login("partner_admin")
    page.goto(dev_server.url(HOST, "/login?next=/partner/branding"))
    fill_sign_in(page, admin)
    expect(page.get_by_role("heading", name="Your brand")).to_be_visible()
    yield page
    context.close()


def _upload_logo(page: Any, path: Path) -> Any:
    """Choose the file in the logo form and press its button; returns the response to the post."""
    form = page.locator("form[action='/partner/branding/logo']")
    form.locator("input[type=file]").set_input_files(str(path))
    with page.expect_response(lambda r: r.request.method == "POST" and "/partner/branding/logo" in r.url) as info:
        form.locator("button[type=submit]").click()
    return info.value


def _assert_brand_unchanged(page: Any, dev_server: DevServer, before: Snapshot) -> None:
    page.goto(dev_server.url(HOST, "/partner/branding"))
    expect(page.get_by_role("heading", name="Your brand")).to_be_visible()
    assert _brand_on(page) == before
    expect(page.get_by_label("Product name")).to_have_value(before.product)


def test_an_svg_logo_with_a_script_is_refused(admin_page: Any, dev_server: DevServer, tmp_path: Path) -> None:
    page = admin_page
    before = _brand_on(page)
    svg = tmp_path / "logo.svg"
    svg.write_text(EVIL_SVG)
    response = _upload_logo(page, svg)
    assert response.status in (400, 415, 422), response.status
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("SVG")
    expect(alert).to_contain_text(re.compile("PNG, JPEG or WebP"))
    expect(page.get_by_role("heading", name="Your brand")).to_be_visible()  # still on the editor
    _assert_human_page_in_brand(page)
    assert serious_accessibility_violations(page) == []
    page.screenshot(path=f"{ARTIFACTS}/bad-upload-svg.png", full_page=True)
    _assert_brand_unchanged(page, dev_server, before)


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real PNG of about 20 MB (stored uncompressed)."""
    path = _png_of(tmp_path_factory.mktemp("huge") / "huge-logo.png", 2700)
    assert path.stat().st_size > 20 * 1024 * 1024
    return path


def test_a_20_mb_logo_is_refused_in_the_partners_brand(admin_page: Any, dev_server: DevServer, huge_png: Path) -> None:
    """Whatever refuses it (the body limit or the logo check), the person sees a page in the
    partner's brand that says the file is too large, not JSON, and the brand is unchanged."""
    page = admin_page
    before = _brand_on(page)
    response = _upload_logo(page, huge_png)
    assert response.status in (400, 413, 422), response.status
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    expect(page.get_by_role("heading", name="That file is too large")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("at most 5 MB")
    _assert_human_page_in_brand(page)
    assert serious_accessibility_violations(page) == []
    page.screenshot(path=f"{ARTIFACTS}/bad-upload-20mb.png", full_page=True)
    page.get_by_role("link", name="Go back and choose a smaller file").click()
    expect(page.get_by_role("heading", name="Your brand")).to_be_visible()
    _assert_brand_unchanged(page, dev_server, before)


def _png_of(path: Path, side: int) -> Path:
    """A real PNG stored uncompressed, about ``3 * side**2`` bytes."""
    Image.new("RGB", (side, side), (14, 59, 92)).save(path, format="PNG", compress_level=0)
    return path


def test_a_too_large_logo_refusal_names_the_limit(admin_page: Any, tmp_path: Path) -> None:
    """Under the server's body limit, the logo check answers on the brand editor itself: it names
    the logo's limit (512 KB) and leaves the upload form in place."""
    page = admin_page
    path = _png_of(tmp_path / "big-logo.png", 600)
    assert path.stat().st_size > 1024 * 1024
    _upload_logo(page, path)
    expect(page.get_by_role("alert")).to_contain_text("512 KB")
    expect(page.get_by_role("heading", name="Your brand")).to_be_visible()
    expect(page.locator("form[action='/partner/branding/logo'] input[type=file]")).to_be_visible()
    _assert_human_page_in_brand(page)


def _plant_counts(page: Any) -> dict[str, int]:
    text = page.get_by_role("main").inner_text()
    counts = {kind: re.findall(rf"\b(\d+) {kind}\b", text) for kind in ("sites", "lines", "assets")}
    assert all(len(v) == 1 for v in counts.values()), counts
    return {kind: int(v[0]) for kind, v in counts.items()}


@pytest.mark.parametrize("action", ["Check the file", "Import"])
def test_a_plant_csv_with_bad_rows_lists_each_problem_and_changes_nothing(
    admin_page: Any, tmp_path: Path, action: str
) -> None:
    page = admin_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="Acme Precision Castings").click()
    expect(page.get_by_role("heading", name="Acme Precision Castings", level=1)).to_be_visible()
    detail_url = page.url
    before = _plant_counts(page)
    assert before["sites"] >= 1 and before["assets"] >= 1, before

    csv = tmp_path / "bad-plant.csv"
    csv.write_text(BAD_PLANT)
    page.get_by_label("Plant file (CSV)").set_input_files(str(csv))
    page.get_by_role("button", name=action).click()
    expect(page.get_by_role("heading", name="3 problem(s) found; nothing was changed")).to_be_visible()
    problems = page.get_by_role("table", name="Rows to fix").locator("tbody tr")
    expect(problems).to_have_count(len(EXPECTED_PROBLEMS))
    found = {}
    for row in problems.all():
        row_number, column, message = (c.strip() for c in row.locator("td").all_inner_texts())
        found[row_number] = (column, message)
    assert sorted(found) == sorted(EXPECTED_PROBLEMS), found
    for row_number, (column, words) in EXPECTED_PROBLEMS.items():
        assert found[row_number][0] == column, (row_number, found[row_number])
        assert words in found[row_number][1], (row_number, found[row_number])
    _assert_human_page_in_brand(page)
    assert serious_accessibility_violations(page) == []
    page.screenshot(path=f"{ARTIFACTS}/bad-upload-csv-{action.split()[0].lower()}.png", full_page=True)

    assert _plant_counts(page) == before
    page.goto(detail_url)  # a fresh look (reloading would post the file again)
    expect(page.get_by_role("heading", name="Acme Precision Castings", level=1)).to_be_visible()
    assert _plant_counts(page) == before
