"""Source connections in the customer-admin console without JavaScript: the signing secret is on the
answer to creating or rotating it and on no other page; the connection's page shows where the vendor
delivers, its counters and its recent deliveries (filtered by outcome, refusals with their reason);
every change goes through the service; read-only roles and other customers are refused."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from litestar import Litestar

from andon.connectors.sources.verifiers import sign_standard
from tests.frontend.test_customer_console import _created, _person, _refused, _token
from tests.support.browser import new_user_signed_in
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"
BASE = "/admin/connections"


@pytest.fixture
async def admin(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.a.customer, "carla@alpha-customer.example", "customer_admin")
    yield browser
    await browser.aclose()


def _main(page: httpx.Response) -> str:
    return html.unescape(page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0])


def _issued(page: httpx.Response) -> tuple[str, str, str]:
    """(connection id, secret, delivery address) from the one page that shows the secret."""
    secret = re.search(r'id="secret" readonly value="([^"]+)"', page.text)
    connection = re.search(rf'href="{BASE}/([0-9a-f-]{{36}})">I have stored it', page.text)
    address = re.search(r"<dt>Delivery address</dt><dd><code>([^<]+)</code>", page.text)
    assert secret and connection and address, page.text
    return connection.group(1), secret.group(1), address.group(1)


def _form(token: str, **fields: str) -> dict[str, str]:
    base = {
        "csrf_token": token,
        "kind": "webhook",
        "name": "MES line 3",
        "source": "",
        "event_type": ALARM,
        "verifier": "standard_webhooks",
        "signature_header": "",
        "signature_prefix": "",
        "digest_encoding": "hex",
        "tolerance_seconds": "300",
        "enabled": "on",
    }
    return {**base, **fields}


async def _deliver(api: httpx.AsyncClient, connection_id: str, secret: str, msg_id: str) -> httpx.Response:
    body = json.dumps({"code": "E42", "message": "Over temperature"}).encode()
    headers = {**sign_standard(secret, msg_id, datetime.now(UTC), body), "content-type": "application/json"}
    return await api.post(f"/hooks/{connection_id}", content=body, headers=headers)


async def test_the_secret_is_shown_on_the_answers_to_create_and_rotate_only(
    api: httpx.AsyncClient, world: World, admin: httpx.AsyncClient
) -> None:
    empty = _main(await admin.get(BASE))
    assert "No connections yet" in empty and f'href="{BASE}/new"' in empty
    token = await _token(admin, f"{BASE}/new")
    await _refused(admin, f"{BASE}/new", _form(token, name=""), "name", "required")
    vendor = _form(token, verifier="hmac_sha256_body")
    await _refused(admin, f"{BASE}/new", vendor, "signature_header", "required")
    await _refused(admin, f"{BASE}/new", _form(token, tolerance_seconds="soon"), "tolerance_seconds", "whole number")
    await _refused(admin, f"{BASE}/new", _form(token, tolerance_seconds="999"), "tolerance_seconds", "Expected")
    await _refused(admin, f"{BASE}/new", _form(token, event_type="vendor.thing"), "event_type", "unknown event type")
    dictated = "whsec_not-base64-at-all!!"
    bad_secret = await _refused(admin, f"{BASE}/new", _form(token, secret=dictated), "secret", "base64")
    assert dictated not in bad_secret  # a secret is never echoed, not even into the form that refused it
    assert "No connections yet" in _main(await admin.get(BASE))

    made = await admin.post(f"{BASE}/new", data=_form(token))
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    assert "shown only once" in made.text
    connection_id, secret, address = _issued(made)
    assert secret.startswith("whsec_") and address == f"http://127.0.0.1:8000/hooks/{connection_id}"

    assert (await _deliver(api, connection_id, secret, "msg_1")).status_code == 201
    assert (await _deliver(api, connection_id, secret, "msg_1")).status_code == 200  # the sender's retry
    wrong = await _deliver(api, connection_id, "whsec_" + "A" * 43 + "=", "msg_2")
    assert wrong.status_code == 401

    detail_url = f"{BASE}/{connection_id}"
    detail = _main(await admin.get(detail_url))
    assert address in detail and "Standard Webhooks" in detail and "Machine alarm" in detail
    assert re.search(
        r"<dt>Accepted</dt><dd>1</dd>\s*<dt>Duplicates</dt><dd>1</dd>\s*<dt>Refused</dt><dd>1</dd>", detail
    )
    assert "3 deliveries" in detail and "msg_1" in detail and "/operations/events/" in detail
    refused_only = _main(await admin.get(detail_url, params={"outcome": "refused"}))
    assert "1 delivery, refused" in refused_only and "msg_1" not in refused_only
    assert "no webhook-signature matches a secret in force" in refused_only
    assert '<option value="refused" selected>' in refused_only
    assert "1 delivery, duplicate" in _main(await admin.get(detail_url, params={"outcome": "duplicate"}))
    listing = _main(await admin.get(BASE))
    assert "MES line 3" in listing and "1 connection(s)" in listing

    # Edits go through the service: refused edits say why, accepted ones are saved and audited.
    await _refused(admin, detail_url, {"csrf_token": token, "name": "", "source": "urn:x"}, "name", "required")
    edit = {"csrf_token": token, "name": "MES line 3 (old)", "source": f"urn:andon:connection:{connection_id}"}
    saved = await _created(admin, detail_url, {**edit, "event_type": ALARM, "tolerance_seconds": "60"})
    shown = _main(await admin.get(saved))
    assert "Saved." in shown and "MES line 3 (old)" in shown and "off: deliveries are refused" in shown
    assert "60 seconds" in shown
    assert (await _deliver(api, connection_id, secret, "msg_3")).status_code == 404  # switched off

    rotated = await admin.post(f"{detail_url}/rotate", data={"csrf_token": token, "rollover_seconds": "3600"})
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    _, new_secret, _ = _issued(rotated)
    assert new_secret != secret and "The previous secret still verifies until" in rotated.text
    bad_rotation = await admin.post(
        f"{detail_url}/rotate", data={"csrf_token": token, "rollover_seconds": "0", "secret": "too-short"}
    )
    assert bad_rotation.status_code == 422 and 'id="secret-error"' in bad_rotation.text
    assert "too-short" not in bad_rotation.text

    pages = [await admin.get(p) for p in (detail_url, BASE, "/admin/audit")]
    assert "source_connection.created" in pages[2].text and "source_connection.secret_rotated" in pages[2].text
    for page in (*pages, bad_rotation, await admin.get(detail_url, params={"outcome": "accepted"})):
        assert page.status_code in (200, 422)
        assert secret not in page.text and new_secret not in page.text, page.url

    gone = await _created(admin, f"{detail_url}/delete", {"csrf_token": token})
    assert gone.path == BASE and "Removed MES line 3 (old)" in _main(await admin.get(gone))
    assert (await admin.get(detail_url)).status_code == 404


async def test_the_delivery_address_is_on_the_partners_own_portal(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    r = await api.put(
        f"/api/v1/partners/{world.a.partner_id}/branding",
        json={"product_name": "Alpha Works", "hosts": ["alpha.example"]},
        headers=auth(world.a.key),
    )
    assert r.status_code == 200, r.text
    users_url = f"/api/v1/customers/{world.a.customer.customer_id}/users"
    carla = await new_user_signed_in(
        app,
        api,
        users_url=users_url,
        key=world.a.customer.key,
        email="carla@alpha-customer.example",
        role="customer_admin",
        host="alpha.example",
    )
    token = await _token(carla, f"{BASE}/new")
    made = await carla.post(f"{BASE}/new", data=_form(token))
    connection_id, _, address = _issued(made)
    assert address == f"http://alpha.example:8000/hooks/{connection_id}"
    await carla.aclose()


async def test_read_only_roles_and_other_customers_are_refused(
    app: Litestar, api: httpx.AsyncClient, world: World, admin: httpx.AsyncClient
) -> None:
    token = await _token(admin, f"{BASE}/new")
    connection_id, secret, _ = _issued(await admin.post(f"{BASE}/new", data=_form(token)))
    detail_url = f"{BASE}/{connection_id}"
    writes: list[tuple[str, dict[str, str]]] = [
        (f"{BASE}/new", _form("")),
        (detail_url, {"name": "Hijacked", "source": "urn:x"}),
        (f"{detail_url}/rotate", {"rollover_seconds": "0"}),
        (f"{detail_url}/delete", {}),
    ]

    auditor = await _person(app, api, world.a.customer, "aud@alpha-customer.example", "auditor")
    nav = (await auditor.get("/account")).text.split("</nav>", 1)[0]
    assert f'href="{BASE}"' in nav
    for path in (BASE, detail_url):
        page = await auditor.get(path)
        assert page.status_code == 200 and 'method="post"' not in _main(page) and secret not in page.text
    assert "MES line 3" in _main(await auditor.get(BASE)) and f"{BASE}/new" not in _main(await auditor.get(BASE))
    assert (await auditor.get(f"{BASE}/new")).status_code == 403
    own = await _token(auditor, "/account")
    for path, data in writes:
        r = await auditor.post(path, data={**data, "csrf_token": own})
        assert r.status_code == 403, (path, r.status_code)

    supervisor = await _person(app, api, world.a.customer, "sue@alpha-customer.example", "plant_supervisor")
    assert f'href="{BASE}"' not in (await supervisor.get("/account")).text
    assert (await supervisor.get(BASE)).status_code == 403
    assert (await supervisor.get(detail_url)).status_code == 403

    bravo = await _person(app, api, world.b.customer, "bob@bravo-customer.example", "customer_admin")
    assert (await bravo.get(detail_url)).status_code == 404
    assert (await bravo.get(detail_url, params={"outcome": "refused"})).status_code == 404
    theirs = await _token(bravo, "/account")
    for path, data in writes[1:]:
        r = await bravo.post(path, data={**data, "csrf_token": theirs})
        assert r.status_code == 404, (path, r.status_code)
    assert "MES line 3" not in (await bravo.get(BASE)).text
    untouched = _main(await admin.get(detail_url))
    assert "MES line 3" in untouched and "on: deliveries are taken" in untouched and secret not in untouched
    for browser in (auditor, supervisor, bravo):
        await browser.aclose()
