"""A partner's brand: readable colours only (WCAG AA, with the measured ratio and a suggestion),
custom domains that belong to one partner, logos that are only pixels; and pages that wear the brand
of the host they are served on."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from litestar import Litestar
from PIL import Image

from tests.identity.conftest import browser_on
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
NORTHWIND = {
    "product_name": "Northwind Ops",
    "primary_colour": "#123456",
    "accent_colour": "#0b5d3b",
    "support_email": "help@northwind.example",
    "hosts": ["portal.northwind.example"],
}


def _png(size: tuple[int, int] = (64, 32), *, comment: bytes | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, (200, 30, 30))
    info = None
    if comment:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Comment", comment.decode())
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


async def _brand(api: httpx.AsyncClient, world: World, body: dict[str, Any], **params: Any) -> httpx.Response:
    return await api.put(
        f"/api/v1/partners/{world.a.partner_id}/branding", json=body, params=params, headers=auth(world.a.key)
    )


async def test_brand_round_trip_and_preview(api: httpx.AsyncClient, world: World) -> None:
    preview = await _brand(api, world, NORTHWIND, dry_run="true")
    assert preview.status_code == 200
    assert "--primary: #123456" in preview.json()["css"]
    assert (await api.get(f"/api/v1/partners/{world.a.partner_id}/branding", headers=auth(world.a.key))).json()[
        "product_name"
    ] == "Alpha"  # the dry run saved nothing; the default is the partner's name
    saved = await _brand(api, world, NORTHWIND)
    assert saved.status_code == 200
    body = saved.json()
    assert (body["product_name"], body["hosts"]) == ("Northwind Ops", ["portal.northwind.example"])
    assert all(c["passes"] for c in body["contrast"]) and body["contrast"][0]["ratio"] > 10


async def test_unreadable_colours_are_refused_with_a_suggestion(api: httpx.AsyncClient, world: World) -> None:
    r = await _brand(api, world, {**NORTHWIND, "primary_colour": "#ffcc00"})
    assert r.status_code == 422
    error = r.json()["errors"][0]
    assert error["field"] == "primary_colour" and error["ratio"] == 1.51
    assert "below the WCAG AA minimum of 4.5:1" in r.json()["detail"]
    fixed = await _brand(api, world, {**NORTHWIND, "primary_colour": error["suggestion"]})
    assert fixed.status_code == 200  # the suggested colour passes


async def test_custom_domains_belong_to_one_partner(api: httpx.AsyncClient, world: World) -> None:
    assert (await _brand(api, world, NORTHWIND)).status_code == 200
    r = await api.put(
        f"/api/v1/partners/{world.b.partner_id}/branding",
        json={**NORTHWIND, "product_name": "Copycat"},
        headers=auth(world.b.key),
    )
    assert r.status_code == 409 and "already belong to another partner" in r.json()["detail"]
    # And a partner cannot touch another partner's brand at all.
    r = await api.put(f"/api/v1/partners/{world.a.partner_id}/branding", json=NORTHWIND, headers=auth(world.b.key))
    assert r.status_code == 404


async def test_logo_is_sanitised(api: httpx.AsyncClient, world: World) -> None:
    url = f"/api/v1/partners/{world.a.partner_id}/branding/logo"
    headers = {**auth(world.a.key), "content-type": "image/png"}
    ok = await api.put(url, content=_png(comment=b"secret metadata"), headers=headers)
    assert ok.status_code == 200, ok.text
    logo_url = ok.json()["logo_url"]
    served = await api.get(logo_url)
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content.startswith(b"\x89PNG") and b"secret metadata" not in served.content

    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    cases = [
        (svg, 415, "SVG images can carry scripts"),
        (b"GIF89a" + b"\x00" * 50, 415, "not an image we can read"),
        (b"not an image at all", 415, "not an image we can read"),
        (_png((2000, 2000)) + b"\x00" * 600_000, 422, "the limit is 512 KB"),
        (b"\x00" * (20 * 1024 * 1024), 413, "larger than this address accepts (at most 5 MB)"),
    ]
    for data, status, message in cases:
        r = await api.put(url, content=data, headers=headers)
        assert r.status_code == status, (message, r.text[:200])
        assert message in r.json()["detail"]
    still = await api.get(logo_url)
    assert still.content == served.content  # refused uploads changed nothing


async def test_pages_wear_the_brand_of_their_host(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    assert (await _brand(api, world, NORTHWIND)).status_code == 200
    await api.put(
        f"/api/v1/partners/{world.a.partner_id}/branding/logo",
        content=_png(),
        headers={**auth(world.a.key), "content-type": "image/png"},
    )
    bluefin = {
        "product_name": "Bluefin Connect",
        "primary_colour": "#4a1942",
        "accent_colour": "#5b2a86",
        "hosts": ["ops.bluefin.example"],
    }
    r = await api.put(f"/api/v1/partners/{world.b.partner_id}/branding", json=bluefin, headers=auth(world.b.key))
    assert r.status_code == 200
    async with browser_on(app, "portal.northwind.example") as northwind, browser_on(app, "ops.bluefin.example") as blue:
        page = (await northwind.get("/login")).text
        assert "Northwind Ops" in page and "--primary: #123456" in page and "help@northwind.example" in page
        assert f"/brand/{world.a.partner_id}/logo.png" in page
        assert "Andon" not in page and "Bluefin" not in page
        other = (await blue.get("/login")).text
        assert "Bluefin Connect" in other and "Northwind" not in other
    async with browser_on(app, "andon.test") as plain:
        assert "<title>Sign in · Andon</title>" in (await plain.get("/login")).text


async def test_emails_speak_in_the_partners_name(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    assert (await _brand(api, world, NORTHWIND)).status_code == 200
    c = world.a.customer
    r = await api.post(
        f"/api/v1/customers/{c.customer_id}/users",
        headers=auth(world.a.key),
        json={"email": "new.admin@acme.example", "display_name": "New Admin", "grants": [{"role": "customer_admin"}]},
    )
    assert r.status_code == 201
    async with browser_on(app, "andon.test") as browser:
        mailbox = (await browser.get("/dev/mailbox")).text
    assert "You are invited to Northwind Ops" in mailbox
    # A link to the partner's own portal (same scheme and port as the platform's base URL).
    assert "http://portal.northwind.example:8000/invitations/" in mailbox
    # A password reset speaks in the person's own partner's name and links to its portal, wherever it
    # was asked for (the partner's portal or any other host); a forged host never appears.
    r = await api.post(
        f"/api/v1/customers/{c.customer_id}/users",
        headers=auth(c.key),
        json={
            "email": "active@acme.example",
            "display_name": "Active",
            "password": "a long local pass",
            "grants": [{"role": "technician"}],
        },
    )
    assert r.status_code == 201
    async with browser_on(app, "portal.northwind.example") as portal, browser_on(app, "evil.example") as evil:
        for client in (portal, evil):
            page = await client.get("/password-reset")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            await client.post("/password-reset", data={"csrf_token": token, "email": "active@acme.example"})
    async with browser_on(app, "andon.test") as browser:
        mailbox = (await browser.get("/dev/mailbox")).text
    assert mailbox.count("Reset your Northwind Ops password") == 2
    assert mailbox.count("http://portal.northwind.example:8000/password-reset/") == 2
    assert "Reset your Andon password" not in mailbox and "evil.example" not in mailbox
