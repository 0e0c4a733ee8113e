"""Outbound connections in the customer-admin console without JavaScript: a type is chosen first, its
settings form is drawn from the type's JSON Schema, secrets are write-only (never echoed, not even on
a refused form; afterwards only "set"), a check shows each step against a vendor fake, the connection's
page shows its recent calls; read-only roles and other customers are refused."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.frontend.test_customer_console import _created, _person, _refused, _token
from tests.support.vendor_fake import VendorFake, vendor_fake
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
BASE = "/admin/outbound"
SECRET = "sk_live_Pq7WnX3vB8mT2kR5yL1z"


@pytest.fixture
def vendor() -> Iterator[VendorFake]:
    with vendor_fake() as fake:
        yield fake


@pytest.fixture
async def admin(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.a.customer, "carla@alpha-customer.example", "customer_admin")
    yield browser
    await browser.aclose()


def _main(page: httpx.Response) -> str:
    return html.unescape(page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0])


def _rest_form(token: str, vendor: VendorFake, **fields: str) -> dict[str, str]:
    base = {
        "csrf_token": token,
        "key": "cmms",
        "name": "Maintenance CMMS",
        "timeout_seconds": "10",
        "rate_per_second": "10",
        "enabled": "on",
        "config-base_url": vendor.url + "/api",
        "config-auth": "api_key",
        "config-api_key_header": "X-API-Key",
        "config-username": "",
        "config-token_url": "",
        "config-client_id": "",
        "config-scope": "",
        "config-headers": "X-Plant: Lyon\n\nAccept-Language: fr",
        "secret-api_key": SECRET,
        "secret-password": "",
        "secret-token": "",
        "secret-client_secret": "",
    }
    return {**base, **fields}


async def _make_rest(admin: httpx.AsyncClient, vendor: VendorFake, **fields: str) -> httpx.URL:
    """A REST connection made through the form; where the browser goes next (its page, with the notice)."""
    token = await _token(admin, f"{BASE}/new/rest")
    made = await _created(admin, f"{BASE}/new/rest", _rest_form(token, vendor, **fields))
    assert re.fullmatch(rf"{BASE}/[0-9a-f-]{{36}}", made.path), made
    return made


async def _read(api: httpx.AsyncClient, world: World, detail_url: str) -> dict[str, Any]:
    connection_id = detail_url.rsplit("/", 1)[1]
    r = await api.get(
        f"/api/v1/customers/{world.a.customer.customer_id}/outbound-connections/{connection_id}",
        headers=auth(world.a.customer.key),
    )
    assert r.status_code == 200, r.text
    read: dict[str, Any] = r.json()
    return read


async def test_a_rest_connection_is_made_through_the_form_drawn_from_its_schema(
    api: httpx.AsyncClient, world: World, admin: httpx.AsyncClient, vendor: VendorFake
) -> None:
    empty = _main(await admin.get(BASE))
    assert "No outbound connections yet" in empty and f'href="{BASE}/new"' in empty
    assert "how workflows reach your systems: Slack, Teams, e-mail, REST APIs, signed webhooks" in empty

    types = _main(await admin.get(f"{BASE}/new"))
    titles = {"rest": "REST API", "webhook": "Signed webhook", "slack": "Slack", "email": "E-mail (SMTP)"}
    for key, title in titles.items():
        assert f'href="{BASE}/new/{key}">{title}</a>' in types
    assert "Posts to a Slack channel through an incoming webhook." in types
    assert (await admin.get(f"{BASE}/new/fax")).status_code == 404

    form = (await admin.get(f"{BASE}/new/rest")).text
    assert re.search(r'<select id="config-auth" name="config-auth" required', form)
    assert re.search(r'<option value="none" selected>None</option>', form)
    assert '<option value="oauth2_client_credentials">OAuth2 client credentials</option>' in form
    assert 'id="config-api_key_header" name="config-api_key_header" type="text" value="X-API-Key"' in form
    assert '<textarea id="config-headers" name="config-headers"' in form and "Name: value" in form
    assert re.search(r'<label for="config-base_url">Base URL</label>', form)  # required: no "(optional)"
    assert 'id="secret-api_key" name="secret-api_key" type="password" value=""' in form
    assert "Needed with some settings only" in form
    assert "Needed. Stored sealed" in (await admin.get(f"{BASE}/new/slack")).text
    email = (await admin.get(f"{BASE}/new/email")).text
    assert 'id="config-port" name="config-port" type="number" value="587"' in email

    token = await _token(admin, f"{BASE}/new/rest")
    path = f"{BASE}/new/rest"
    ftp = _rest_form(token, vendor, **{"config-base_url": "ftp://nope"})
    bad_url = await _refused(admin, path, ftp, "config-base_url", "a web address starting with https://")
    assert 'value="Maintenance CMMS"' in bad_url and 'value="ftp://nope"' in bad_url  # what was typed stays
    assert "X-Plant: Lyon" in bad_url and SECRET not in bad_url  # ... except the secret
    assert "Traceback" not in bad_url
    await _refused(
        admin, path, _rest_form(token, vendor, **{"config-headers": "X-Plant Lyon"}), "config-headers", "Name: value"
    )
    await _refused(admin, path, _rest_form(token, vendor, key="http"), "key", "built-in capability")
    await _refused(admin, path, _rest_form(token, vendor, key="CMMS!"), "key", "not in the expected format")
    await _refused(admin, path, _rest_form(token, vendor, timeout_seconds="500"), "timeout_seconds", "at most 120")
    await _refused(admin, path, _rest_form(token, vendor, rate_per_second="fast"), "rate_per_second", "whole number")
    basic = await _refused(
        admin, path, _rest_form(token, vendor, **{"config-auth": "basic"}), "config", "needs username"
    )
    assert '<option value="basic" selected>' in basic and SECRET not in basic
    assert "No outbound connections yet" in _main(await admin.get(BASE))  # none of the refused forms wrote

    made = await _make_rest(admin, vendor)
    detail_url = made.path
    read = await _read(api, world, detail_url)
    assert read["config"]["headers"] == {"X-Plant": "Lyon", "Accept-Language": "fr"}
    assert read["config"]["auth"] == "api_key" and read["config"]["username"] is None
    assert read["secrets_set"] == ["api_key"] and read["enabled"] is True

    detail = await admin.get(made)
    shown = _main(detail)
    assert "Added Maintenance CMMS." in shown and "<code>cmms.request</code>" in shown
    assert "API key: set" in shown and "Bearer token: not set" in shown and SECRET not in detail.text
    assert "<code>X-Plant: Lyon</code>" in shown and "never checked" in shown and "No call yet." in shown
    assert 'id="secret-api_key" name="secret-api_key" type="password" value=""' in detail.text
    assert "Now set; leave empty to keep it." in shown

    again = await _refused(admin, path, _rest_form(token, vendor), "key", "already in use")
    assert SECRET not in again
    listing = _main(await admin.get(BASE))
    assert "1 outbound connection(s)" in listing and "<code>cmms</code>" in listing and "REST API" in listing
    assert "never checked" in listing and "missing:" not in listing

    # Numbers and choices go to the service typed; a secret the settings need is flagged until set.
    mail = {"csrf_token": token, "key": "mail", "name": "Plant mail", "timeout_seconds": "10", "rate_per_second": "2"}
    mail |= {"config-host": "smtp.example.com", "config-port": "2525", "config-security": "tls"}
    mail |= {"config-username": "andon", "config-sender": "andon@example.com", "enabled": "on"}
    await _refused(admin, f"{BASE}/new/email", {**mail, "config-port": "99999"}, "config-port", "at most 65535")
    await _refused(admin, f"{BASE}/new/email", {**mail, "config-sender": "nobody"}, "config-sender", "expected format")
    mail_url = (await _created(admin, f"{BASE}/new/email", mail)).path
    config = (await _read(api, world, mail_url))["config"]
    assert config["port"] == 2525 and config["security"] == "tls" and config["sender_name"] == ""
    assert "missing: SMTP password" in _main(await admin.get(BASE))
    mail_page = _main(await admin.get(mail_url))
    assert 'SMTP password: <span class="badge warning">not set</span>' in mail_page
    assert "<dt>Security</dt><dd>TLS</dd>" in mail_page and "Secrets not set: SMTP password." in mail_page


async def test_check_shows_each_step_and_the_page_shows_recent_calls(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    admin: httpx.AsyncClient,
    vendor: VendorFake,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    detail_url = (await _make_rest(admin, vendor)).path
    token = await _token(admin, detail_url)
    checked = await admin.post(f"{detail_url}/check", data={"csrf_token": token})
    assert checked.status_code == 200, checked.text
    shown = _main(checked)
    assert re.search(r'This check:</strong> <span class="badge ok">ok</span>', shown), shown
    assert re.search(r"<strong>reach the base URL</strong>: answered 200 in [\d.]+ ms", shown)
    assert vendor.api_requests()[-1].headers["x-api-key"] == SECRET and SECRET not in checked.text
    assert vendor.api_requests()[-1].headers["x-plant"] == "Lyon"
    stored = _main(await admin.get(detail_url))
    assert re.search(r'Last check:</strong> <span class="badge ok">ok</span> <time', stored)
    assert "reach the base URL" in stored
    assert '<span class="badge ok">ok</span>' in _main(await admin.get(BASE))
    assert (await admin.post(f"{detail_url}/check", data={})).status_code == 403  # no CSRF token

    # A secret the settings need and nobody set: a warning in the list, a failed step on the check.
    slack = await _created(
        admin,
        f"{BASE}/new/slack",
        {
            "csrf_token": token,
            "key": "shift_chat",
            "name": "Shift chat",
            "timeout_seconds": "5",
            "rate_per_second": "1",
        },
    )
    assert "missing: Incoming webhook URL" in _main(await admin.get(BASE))
    failed = _main(await admin.post(f"{slack.path}/check", data={"csrf_token": token}))
    assert re.search(r'<span class="badge failed">failed</span> <strong>secrets</strong>: not set: webhook_url', failed)
    assert "off: workflow steps" in failed  # the form's unticked "On" box

    calls = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    tenant = TenantContext(
        tenant_id=TenantId(world.a.customer.customer_id), partner_id=world.a.partner_id, principal=ENGINE
    )
    run_id = uuid.uuid4()
    await calls.call(
        tenant,
        "cmms",
        "request",
        {"path": "/orders", "json": {"asset": "press 4"}},
        idempotency_key="k1",
        run_id=run_id,
    )
    await calls.egress.close()
    page = _main(await admin.get(detail_url))
    assert '<span class="badge ok">ok</span></td>' in page and f'href="/operations/runs/{run_id}"' in page
    assert "<code>cmms.request</code></td>" in page and "press 4" in page and " ms</td>" in page


async def test_edits_replace_secrets_only_when_typed_and_removal_is_confirmed(
    api: httpx.AsyncClient, world: World, admin: httpx.AsyncClient, vendor: VendorFake
) -> None:
    detail_url = (await _make_rest(admin, vendor)).path
    token = await _token(admin, detail_url)
    edit = {
        k: v for k, v in _rest_form(token, vendor, name="CMMS (Lyon)", **{"secret-api_key": ""}).items() if k != "key"
    }
    saved = await _created(admin, detail_url, edit)
    assert "Saved." in _main(await admin.get(saved))
    read = await _read(api, world, detail_url)
    assert read["name"] == "CMMS (Lyon)" and read["secrets_set"] == ["api_key"] and read["key"] == "cmms"

    refused = await _refused(
        admin,
        detail_url,
        {**edit, "config-base_url": "nope", "secret-api_key": "new-" + SECRET},
        "config-base_url",
        "web address",
    )
    assert "new-" + SECRET not in refused and 'value="CMMS (Lyon)"' in refused
    assert (await _read(api, world, detail_url))["config"]["base_url"] == vendor.url + "/api"

    replaced = await _created(admin, detail_url, {**edit, "secret-api_key": "new-" + SECRET})
    assert "Replaced: api_key." in _main(await admin.get(replaced))
    await admin.post(f"{detail_url}/check", data={"csrf_token": token})
    assert vendor.api_requests()[-1].headers["x-api-key"] == "new-" + SECRET

    confirm = _main(await admin.get(f"{detail_url}/delete"))
    assert "Remove CMMS (Lyon)?" in confirm and "<code>cmms.request</code>" in confirm
    gone = await _created(admin, f"{detail_url}/delete", {"csrf_token": token})
    assert gone.path == BASE and "Removed CMMS (Lyon)" in _main(await admin.get(gone))
    assert (await admin.get(detail_url)).status_code == 404


async def test_read_only_roles_and_other_customers_are_refused(
    app: Litestar, api: httpx.AsyncClient, world: World, admin: httpx.AsyncClient, vendor: VendorFake
) -> None:
    detail_url = (await _make_rest(admin, vendor)).path
    writes: list[tuple[str, dict[str, str]]] = [
        (f"{BASE}/new/rest", _rest_form("", vendor, key="other")),
        (detail_url, {"name": "Hijacked", "timeout_seconds": "10", "rate_per_second": "10"}),
        (f"{detail_url}/check", {}),
        (f"{detail_url}/delete", {}),
    ]

    auditor = await _person(app, api, world.a.customer, "aud@alpha-customer.example", "auditor")
    for path in (BASE, detail_url):
        page = await auditor.get(path)
        assert page.status_code == 200 and 'method="post"' not in _main(page) and SECRET not in page.text
    assert f"{BASE}/new" not in _main(await auditor.get(BASE))
    for path in (f"{BASE}/new", f"{BASE}/new/rest", f"{detail_url}/delete"):
        assert (await auditor.get(path)).status_code == 403, path
    own = await _token(auditor, "/account")
    for path, data in writes:
        r = await auditor.post(path, data={**data, "csrf_token": own})
        assert r.status_code == 403, (path, r.status_code)

    supervisor = await _person(app, api, world.a.customer, "sue@alpha-customer.example", "plant_supervisor")
    assert (await supervisor.get(BASE)).status_code == 403
    assert (await supervisor.get(detail_url)).status_code == 403

    bravo = await _person(app, api, world.b.customer, "bob@bravo-customer.example", "customer_admin")
    assert (await bravo.get(detail_url)).status_code == 404
    assert (await bravo.get(f"{detail_url}/delete")).status_code == 404
    theirs = await _token(bravo, "/account")
    for path, data in writes[1:]:
        r = await bravo.post(path, data={**data, "csrf_token": theirs})
        assert r.status_code == 404, (path, r.status_code)
    assert "Maintenance CMMS" not in (await bravo.get(BASE)).text
    read = await _read(api, world, detail_url)
    assert read["name"] == "Maintenance CMMS" and read["last_check_at"] is None
    for browser in (auditor, supervisor, bravo):
        await browser.aclose()
