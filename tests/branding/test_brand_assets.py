"""Favicons, safe custom CSS and per-customer logos: what a partner may add to its brand, checked
before it is stored, and served to exactly the people who should see it."""

from __future__ import annotations

import io

import httpx
import pytest
from litestar import Litestar
from PIL import Image

from andon.platform.http.errors import ValidationFailedError
from andon.tenants.branding.custom_css import clean_css
from tests.support.browser import browser_on, new_user_signed_in
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 90, 160)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("css", "reason"),
    [
        ("@import url(https://evil.example/x.css);", "@import rules are not allowed"),
        ("a { background-color: url(https://evil.example/p?) }", "url() is not allowed"),
        ("a { background-color: u\\72l(https://evil.example) }", "url() is not allowed"),  # escaped name
        ('input[value^="a"] { color: red }', "attribute selectors"),
        ("header { position: fixed; z-index: 9 }", "'position' is not allowed"),
        ("a { color: expression(alert(1)) }", "expression() is not allowed"),
        ("a::before { content: 'Call 555' }", "'content' is not allowed"),
        ("@font-face { font-family: x; src: url(x.woff) }", "@font-face rules are not allowed"),
        ("a { color red }", "line 1"),
    ],
)
def test_unsafe_css_is_refused_with_the_reason(css: str, reason: str) -> None:
    with pytest.raises(ValidationFailedError) as refused:
        clean_css(css)
    assert reason in refused.value.detail


def test_safe_css_is_reserialised_from_its_tokens() -> None:
    css = (
        'header  .product{font-family:"Inter",system-ui;letter-spacing:.02em}  button:hover { color : #fff !important }'
    )
    assert clean_css(css) == (
        'header  .product {\n  font-family: "Inter",system-ui;\n  letter-spacing: .02em;\n}\n'
        "button:hover {\n  color: #fff !important;\n}"
    )


async def test_custom_css_and_favicon_are_served_on_the_partners_portal(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    base = f"/api/v1/partners/{world.a.partner_id}/branding"
    brand = {"product_name": "Alpha Works", "hosts": ["alpha.example"]}
    refused = await api.put(base, json={**brand, "custom_css": "a { position: fixed }"}, headers=auth(world.a.key))
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "custom_css"
    assert (await api.get(base, headers=auth(world.a.key))).json()["custom_css"] is None  # nothing stored

    saved = await api.put(base, json={**brand, "custom_css": "h1 { color: #102030 }"}, headers=auth(world.a.key))
    assert saved.status_code == 200, saved.text
    icon = await api.put(
        f"{base}/favicon", content=_png((300, 300)), headers={**auth(world.a.key), "content-type": "image/png"}
    )
    assert icon.status_code == 200, icon.text
    favicon_url = icon.json()["favicon_url"]
    other = await api.put(f"{base}/banner", content=_png((10, 10)), headers=auth(world.a.key))
    assert other.status_code == 422 and "image" in other.json()["detail"]
    async with browser_on(app, "alpha.example") as browser:
        login = (await browser.get("/login")).text
        css_url = f"/brand/{world.a.partner_id}/custom.css?v=1"
        assert (
            f'<link rel="stylesheet" href="{css_url}">' in login and f'<link rel="icon" href="{favicon_url}">' in login
        )
        css = await browser.get(css_url)
        assert css.headers["content-type"].startswith("text/css") and css.headers["x-content-type-options"] == "nosniff"
        assert css.text == "h1 {\n  color: #102030;\n}"
        served = await browser.get(favicon_url)
        with Image.open(io.BytesIO(served.content)) as image:
            assert image.format == "PNG" and image.size == (64, 64)
    async with browser_on(app, "andon.test") as plain:
        assert "custom.css" not in (await plain.get("/login")).text  # Andon's own pages wear none of it


async def test_a_customer_logo_is_seen_inside_its_own_organisation_only(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    customer = world.a.customer
    url = f"/api/v1/customers/{customer.customer_id}/logo"
    headers = {**auth(world.a.key), "content-type": "image/png"}
    assert (await api.put(url, content=b"<svg><script>alert(1)</script></svg>", headers=headers)).status_code == 415
    assert (
        await api.put(f"/api/v1/customers/{world.b.customer.customer_id}/logo", content=_png((40, 20)), headers=headers)
    ).status_code == 404
    set_logo = await api.put(url, content=_png((400, 100)), headers=headers)
    assert set_logo.status_code == 200, set_logo.text
    logo_url = set_logo.json()["logo_url"]

    person = await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/customers/{customer.customer_id}/users",
        key=customer.key,
        email="sam@alpha-customer.example",
        role="plant_supervisor",
    )
    page = (await person.get("/account")).text
    assert f'<img class="customer-logo" src="{logo_url}"' in page
    assert (await person.get(logo_url)).content.startswith(b"\x89PNG")

    stranger = await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/customers/{world.b.customer.customer_id}/users",
        key=world.b.customer.key,
        email="sid@bravo-customer.example",
        role="plant_supervisor",
    )
    assert 'class="customer-logo"' not in (await stranger.get("/account")).text
    assert (await stranger.get(logo_url)).status_code == 404
    async with browser_on(app, "andon.test") as anonymous:
        assert (await anonymous.get(logo_url)).status_code == 401
    await person.aclose()
    await stranger.aclose()
