"""The partner's template library and rollouts in its console, without JavaScript: fork a catalog
template, edit the draft's YAML (every problem listed by line and path, the text kept), check without
saving, edit the parameters' defaults and messages in the form view (only those lines of the YAML
change), publish a version typed in a field (a refusal under it), deprecate, read the diff; plan a
rollout with a canary, run its waves, roll one back. Another partner sees none of it."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml
from litestar import Litestar
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.frontend.partner.template_yaml import with_values
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.tenancy.principal import system_principal
from andon.templates_catalog.library.models import PartnerTemplate
from tests.support.browser import csrf_token, new_user_signed_in
from tests.tenants.factories import Org, World, auth

pytestmark = pytest.mark.anyio
LIBRARY = "/partner/library"
ROLLOUTS = "/partner/rollouts"
DOWNTIME = "unplanned-downtime-escalation"
HANDOVER = "shift-handover"
SLACK = {"webhook_url": "https://hooks.slack.com/services/T/B/x"}


async def _engineer(app: Litestar, api: httpx.AsyncClient, org: Org, email: str) -> httpx.AsyncClient:
    return await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/partners/{org.partner_id}/users",
        key=org.key,
        email=email,
        role="partner_engineer",
    )


@pytest.fixture
async def erin(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The first partner's engineer, signed in."""
    browser = await _engineer(app, api, world.a, "erin@alpha.example")
    yield browser
    await browser.aclose()


@pytest.fixture
async def bruno(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The second partner's engineer, signed in."""
    browser = await _engineer(app, api, world.b, "bruno@bravo.example")
    yield browser
    await browser.aclose()


def _main(page: httpx.Response) -> str:
    return html.unescape(page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0])


def _textarea(page: httpx.Response, name: str = "yaml") -> str:
    found = re.search(rf'<textarea id="{name}"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert found, page.text[:500]
    return html.unescape(found.group(1))


def _problems(page: httpx.Response) -> list[str]:
    """The editor's problem list as read: "Line 12, workflow.steps[0].next: ..."."""
    section = page.text.split('id="problems"', 1)[1].split("</section>", 1)[0]
    items = re.findall(r"<li[^>]*>(.*?)</li>", section, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", i)).strip() for i in items]


def _form_data(page: httpx.Response, **changed: str) -> dict[str, str]:
    """The form view's fields as the page fills them in (as a browser would send them), with ``changed``."""
    form = page.text.split('action="/partner/library/', 1)[1]
    form = form.split('/form">', 1)[1].split("</form>", 1)[0]
    data = {n: html.unescape(v) for n, v in re.findall(r'<input[^>]* name="([^"]+)"[^>]* value="([^"]*)"', form)}
    for name, body in re.findall(r'<textarea[^>]* name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        data[name] = html.unescape(body)
    for name, options in re.findall(r'<select[^>]* name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        picked = re.search(r'<option value="([^"]*)" selected>', options)
        data[name] = html.unescape(picked.group(1)) if picked else ""
    return {**data, **changed}


async def _fork(browser: httpx.AsyncClient, template: str, key: str = "") -> str:
    """Forks from the library page's form; the new template's editor address."""
    token = csrf_token((await browser.get(LIBRARY)).text)
    r = await browser.post(f"{LIBRARY}/forks", data={"csrf_token": token, "template": template, "key": key})
    assert r.status_code == 303, r.text
    return httpx.URL(r.headers["location"]).path


async def _api_library(api: httpx.AsyncClient, org: Org) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/partners/{org.partner_id}/templates/", headers=auth(org.key))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


async def _draft_against_upstream(api: httpx.AsyncClient, org: Org, editor: str) -> str:
    """The API's diff of the draft with the catalog text it was forked from."""
    template_id = editor.rsplit("/", 1)[1]
    r = await api.get(
        f"/api/v1/partners/{org.partner_id}/templates/{template_id}/diff",
        params={"base": "upstream", "head": "draft"},
        headers=auth(org.key),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["diff"])


async def test_fork_shows_in_the_library_with_its_upstream_and_a_newer_upstream_badge(
    erin: httpx.AsyncClient, api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    empty = await erin.get(LIBRARY)
    assert empty.status_code == 200
    page = _main(empty)
    assert "No templates in your library yet" in page
    assert '<option value="unplanned-downtime-escalation">Unplanned downtime escalation</option>' in page
    assert re.search(r'<a href="/partner/library"[^>]*>Template library</a>', empty.text)  # in the navigation

    token = csrf_token(empty.text)
    forked = await erin.post(
        f"{LIBRARY}/forks", data={"csrf_token": token, "template": DOWNTIME, "key": ""}, follow_redirects=True
    )
    editor = forked.url.path
    opened = await erin.get(editor)
    assert opened.status_code == 200
    assert "Forked Unplanned downtime escalation 1.0.0 into your library" in _main(forked)
    assert _textarea(opened).startswith(f"template: {DOWNTIME}\nversion: 1.0.0\n")
    # Forking the same key again is refused under the key field, nothing made.
    token = csrf_token(opened.text)
    again = await erin.post(f"{LIBRARY}/forks", data={"csrf_token": token, "template": DOWNTIME, "key": ""})
    assert again.status_code == 422
    assert re.search(r'<p class="error" id="key-error">[^<]*already has a template', again.text)
    unknown = await erin.post(f"{LIBRARY}/forks", data={"csrf_token": token, "template": "no-such-one", "key": ""})
    assert unknown.status_code == 422 and 'id="template-error"' in unknown.text
    assert len(await _api_library(api, world.a)) == 1

    listing = _main(await erin.get(LIBRARY))
    row = listing.split(f'data-template="{DOWNTIME}"', 1)[1].split("</tr>", 1)[0]
    assert "Unplanned downtime escalation" in row and "1.0.0" in row and "Draft" in row
    assert "(already forked)" in listing and "Upstream has" not in row

    # The catalog moves on past the version forked: the library says so and links the diff.
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system_principal(ALL_PERMISSIONS, "test"))
        await session.execute(update(PartnerTemplate).values(upstream_version="0.9.0"))
    badge = _main(await erin.get(LIBRARY))
    assert "Upstream has 1.0.0" in badge
    assert "Upstream has 1.0.0" in _main(await erin.get(editor))


async def test_yaml_errors_are_listed_by_line_and_the_text_is_kept(
    erin: httpx.AsyncClient, api: httpx.AsyncClient, world: World
) -> None:
    editor = await _fork(erin, DOWNTIME)
    opened = await erin.get(editor)
    token = csrf_token(opened.text)
    original = _textarea(opened)
    lines = original.split("\n")

    # A syntax error: a key indented where YAML does not allow it.
    broken = original.replace(
        "name: Unplanned downtime escalation\n", "name: Unplanned downtime escalation\n  oops: [\n"
    )
    saved = await erin.post(f"{editor}/draft", data={"csrf_token": token, "yaml": broken})
    assert saved.status_code == 422
    assert "Not saved" in _main(saved)
    [problem] = _problems(saved)
    assert re.match(r"Line \d+", problem) and "not valid YAML" in problem
    assert _textarea(saved) == broken  # what was typed comes back
    assert 'aria-invalid="true"' in saved.text.split('<textarea id="yaml"', 1)[1].split(">", 1)[0]

    # A meaning error: its line and path, the line marked in the gutter.
    wrong = original.replace('text: "@messages.page"', 'text: "@messages.pager"')
    line = next(i for i, text in enumerate(lines, start=1) if '"@messages.page"' in text)
    refused = await erin.post(f"{editor}/draft", data={"csrf_token": token, "yaml": wrong})
    assert refused.status_code == 422
    assert _problems(refused) == [
        f"Line {line}, workflow.steps[0].inputs.text: no message 'pager' in messages",
    ]
    assert f'<span class="bad">{line}</span>' in refused.text
    assert _textarea(refused) == wrong

    # Check lists the same problems and saves nothing; a good text passes the check.
    checked = await erin.post(f"{editor}/check", data={"csrf_token": token, "yaml": wrong})
    assert checked.status_code == 200 and _problems(checked) == _problems(refused)
    assert _textarea(checked) == wrong
    fine = original.replace("version: 1.0.0", "version: 1.0.1")
    passed = await erin.post(f"{editor}/check", data={"csrf_token": token, "yaml": fine})
    assert "No problems found: the template is valid." in _main(passed)
    assert _textarea(await erin.get(editor)) == original  # nothing was saved

    # The library's own rule: the key cannot change; the line of ``template:`` is named.
    renamed = original.replace(f"template: {DOWNTIME}", "template: another-key")
    other = await erin.post(f"{editor}/draft", data={"csrf_token": token, "yaml": renamed})
    assert other.status_code == 422
    assert _problems(other) == [f"Line 1, template: this library template is '{DOWNTIME}'; the YAML says 'another-key'"]

    # Browsers send CRLF line ends; the draft is saved with LF, and the page says so.
    good = fine.replace("\n", "\r\n")
    ok = await erin.post(f"{editor}/draft", data={"csrf_token": token, "yaml": good}, follow_redirects=True)
    assert ok.status_code == 200 and "Draft 1.0.1 saved." in _main(ok)
    assert _textarea(ok) == fine


async def test_the_form_view_changes_only_the_values_edited(
    erin: httpx.AsyncClient, api: httpx.AsyncClient, world: World
) -> None:
    editor = await _fork(erin, DOWNTIME)
    form = await erin.get(editor, params={"tab": "form"})
    assert form.status_code == 200
    shown = _main(form)
    assert 'id="param-acknowledge_seconds"' in shown and 'value="300"' in shown
    assert (
        _textarea(form, "message-page_title") == "Downtime: {{ event.asset_ref or event.subject or 'unknown asset' }}"
    )
    data = _form_data(form, **{"param-acknowledge_seconds": "30"})
    assert data["csrf_token"] == csrf_token(form.text) and data["version"] == "1.0.0"
    assert data["param-severities"] == "critical\nhigh" and data["param-work_order_priority"] == "HIGH"
    data["message-page_title"] = "Northwind Ops: {{ event.asset_ref }} is down"

    # Below the parameter's minimum: refused under its field, what was typed kept, nothing saved.
    refused = await erin.post(f"{editor}/form", data=data)
    assert refused.status_code == 422
    assert re.search(
        r'<p class="error" id="param-acknowledge_seconds-error">30 is less than the minimum of 60', refused.text
    )
    assert 'value="30"' in refused.text
    assert _textarea(refused, "message-page_title") == "Northwind Ops: {{ event.asset_ref }} is down"
    assert "Northwind Ops" not in _textarea(await erin.get(editor))

    # An empty message and a malformed version are read before anything is written.
    blank = await erin.post(
        f"{editor}/form", data={**data, "message-page": " ", "version": "one", "param-default_material": ""}
    )
    assert blank.status_code == 422
    assert 'id="message-page-error"' in blank.text and 'id="version-error"' in blank.text
    assert "the default customers start from; to remove it, edit the YAML" in blank.text

    data["param-acknowledge_seconds"] = "600"
    saved = await erin.post(f"{editor}/form", data=data, follow_redirects=True)
    assert saved.status_code == 200 and "Draft 1.0.0 saved from the form." in _main(saved)
    diff = await _draft_against_upstream(api, world.a, editor)
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [
        "-      default: 300",
        "+      default: 600",
        "-  page_title: \"Downtime: {{ event.asset_ref or event.subject or 'unknown asset' }}\"",
        "+  page_title: 'Northwind Ops: {{ event.asset_ref }} is down'",
    ]
    # Saving the same values again changes nothing.
    same = await erin.post(f"{editor}/form", data=data, follow_redirects=True)
    assert "Nothing changed." in _main(same)


def test_a_value_that_cannot_be_spliced_in_place_rewrites_the_whole_document() -> None:
    text = (
        "template: t\n"
        "parameters: {type: object, properties: {n: {type: integer, default: 1}}}\n"
        "messages:\n  a: x # kept\n"
    )
    both = with_values(text, {("parameters", "properties", "n", "default"): 2, ("messages", "a"): "y: z"})
    assert yaml.safe_load(both) == {
        "template": "t",
        "parameters": {"type": "object", "properties": {"n": {"type": "integer", "default": 2}}},
        "messages": {"a": "y: z"},
    }
    # In place where it can be: the comment and the flow mapping stay as written.
    one = with_values(text, {("messages", "a"): "y: z"})
    assert one == text.replace("a: x # kept", "a: 'y: z' # kept")


async def test_publish_with_a_version_deprecate_and_diff(
    erin: httpx.AsyncClient, api: httpx.AsyncClient, world: World
) -> None:
    editor = await _fork(erin, DOWNTIME)
    opened = await erin.get(editor)
    token = csrf_token(opened.text)
    assert re.search(r'<input id="publish-version" name="publish-version" type="text" value="1.0.0"', opened.text)

    bad = await erin.post(f"{editor}/publish", data={"csrf_token": token, "publish-version": "1.1"})
    assert bad.status_code == 422
    assert re.search(r'<p class="error" id="publish-version-error">a version such as 1.1.0', bad.text)

    published = await erin.post(
        f"{editor}/publish", data={"csrf_token": token, "publish-version": "1.1.0"}, follow_redirects=True
    )
    assert published.status_code == 200
    assert f"Published {DOWNTIME} 1.1.0" in _main(published)
    [template] = await _api_library(api, world.a)
    assert template["latest_published"] == "1.1.0" and template["draft"] is None
    assert "No draft to publish" in _main(published)
    library = _main(await erin.get(LIBRARY))
    row = library.split(f'data-template="{DOWNTIME}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>1.1.0</td>" in row.replace("\n", "") and "Published" in row

    # A new draft from the form, then a version not newer than the published one: refused under the field.
    form = await erin.get(editor, params={"tab": "form"})
    assert re.search(r'<input id="version" name="version" type="text" value="1.1.0"', form.text)
    again = await erin.post(f"{editor}/form", data=_form_data(form, **{"message-page_title": "Changed"}))
    assert again.status_code == 422
    assert re.search(r'<p class="error" id="version-error">1.1.0 is already published', again.text)
    form_data = _form_data(form, version="1.2.0", **{"message-page_title": "Changed"})
    assert (await erin.post(f"{editor}/form", data=form_data)).status_code == 303
    old = await erin.post(f"{editor}/publish", data={"csrf_token": token, "publish-version": "1.0.9"})
    assert old.status_code == 422
    assert re.search(
        r'<p class="error" id="publish-version-error">1.0.9 is not newer than the published 1.1.0; raise it', old.text
    )
    assert (await _api_library(api, world.a))[0]["draft"] == "1.2.0"  # the refused version was not kept

    # The diff: the draft against the version before it, in added and removed lines.
    diff = await erin.get(f"{editor}/diff")
    assert diff.status_code == 200
    page = diff.text
    assert '<option value="1.1.0" selected>' in page and '<option value="draft" selected>' in page
    assert '<span class="remove"><span class="visually-hidden">removed: </span>-version: 1.1.0</span>' in page
    assert '<span class="add"><span class="visually-hidden">added: </span>+version: 1.2.0</span>' in page
    assert "<strong>2</strong> line(s) added, <strong>2</strong> removed" in page
    upstream = await erin.get(f"{editor}/diff", params={"base": "upstream", "head": "1.1.0"})
    assert "-version: 1.0.0" in html.unescape(upstream.text) and "+version: 1.1.0" in html.unescape(upstream.text)
    tampered = await erin.get(f"{editor}/diff", params={"base": "../../etc", "head": "9.9.9"})
    assert tampered.status_code == 200  # unknown choices fall back to the default comparison

    deprecated = await erin.post(
        f"{editor}/versions/1.1.0/deprecate", data={"csrf_token": token}, follow_redirects=True
    )
    assert "1.1.0 is deprecated" in _main(deprecated)
    assert (await _api_library(api, world.a))[0]["versions"][0]["status"] == "deprecated"
    assert (await erin.post(f"{editor}/versions/7.7.7/deprecate", data={"csrf_token": token})).status_code == 404


async def _deploy(api: httpx.AsyncClient, org: Org, customer_id: str, template: str = HANDOVER) -> str:
    headers = auth(org.key)
    made = await api.post(
        f"/api/v1/customers/{customer_id}/outbound-connections/",
        json={"key": "shift_slack", "name": "Shift", "type": "slack", "secrets": SLACK},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    deployed = await api.post(
        f"/api/v1/customers/{customer_id}/deployments/",
        json={"template": template, "source": "partner", "version": "1.0.0", "bindings": {"chat": "shift_slack"}},
        headers=headers,
    )
    assert deployed.status_code == 201, deployed.text
    return str(deployed.json()["id"])


async def _version(api: httpx.AsyncClient, org: Org, customer_id: str, deployment_id: str) -> str:
    r = await api.get(f"/api/v1/customers/{customer_id}/deployments/{deployment_id}", headers=auth(org.key))
    return str(r.json()["version"])


async def test_a_rollout_with_a_canary_runs_wave_by_wave_and_rolls_back(
    erin: httpx.AsyncClient, api: httpx.AsyncClient, world: World
) -> None:
    editor = await _fork(erin, HANDOVER)
    token = csrf_token((await erin.get(editor)).text)
    for version in ("1.0.0", "1.1.0"):
        if version != "1.0.0":
            form = await erin.get(editor, params={"tab": "form"})
            data = _form_data(form, version=version, **{"param-acknowledge_seconds": "2400"})
            assert (await erin.post(f"{editor}/form", data=data)).status_code == 303
        r = await erin.post(f"{editor}/publish", data={"csrf_token": token, "publish-version": version})
        assert r.status_code == 303, r.text

    first = str(world.a.customer.customer_id)
    second_made = await api.post(
        "/api/v1/customers/", json={"slug": "beta-plant", "name": "Beta Plant"}, headers=auth(world.a.key)
    )
    second = str(second_made.json()["id"])
    # A customer that runs nothing of it is not offered; one that took its access back is listed apart.
    idle = await api.post(
        "/api/v1/customers/", json={"slug": "idle-plant", "name": "Idle Plant"}, headers=auth(world.a.key)
    )
    closed = await api.post(
        "/api/v1/customers/", json={"slug": "closed-plant", "name": "Closed Plant"}, headers=auth(world.a.key)
    )
    assert idle.status_code == closed.status_code == 201
    deployments = {first: await _deploy(api, world.a, first), second: await _deploy(api, world.a, second)}
    revoke = await api.post(
        f"/api/v1/customers/{closed.json()['id']}/api-keys",
        json={"name": "admin", "roles": ["customer_admin"]},
        headers=auth(world.a.key),
    )
    assert revoke.status_code == 201, revoke.text
    shut = await api.patch(
        f"/api/v1/customers/{closed.json()['id']}",
        json={"partner_access": False},
        headers=auth(revoke.json()["key"]),
    )
    assert shut.status_code == 200, shut.text

    chooser = await erin.get(f"{ROLLOUTS}/new")
    assert f'<option value="{HANDOVER}@1.1.0">Shift handover 1.1.0</option>' in chooser.text
    plan = await erin.get(f"{ROLLOUTS}/new", params={"release": f"{HANDOVER}@1.1.0"})
    page = _main(plan)
    offered = re.findall(r'<tr data-customer="([0-9a-f-]+)">', plan.text)
    assert sorted(offered) == sorted([first, second])
    assert "Idle Plant" not in page
    assert "Not looked at, because they have not granted you access: Closed Plant." in page

    nobody = await erin.post(
        f"{ROLLOUTS}/new",
        data={"csrf_token": token, "release": f"{HANDOVER}@1.1.0", f"wave-{first}": "skip", f"wave-{second}": "skip"},
    )
    assert nobody.status_code == 422 and "choose at least one customer" in nobody.text
    made = await erin.post(
        f"{ROLLOUTS}/new",
        data={
            "csrf_token": token,
            "release": f"{HANDOVER}@1.1.0",
            f"wave-{first}": "canary",
            f"wave-{second}": "later",
        },
    )
    assert made.status_code == 303, made.text
    rollout = httpx.URL(made.headers["location"]).path
    planned = _main(await erin.get(rollout))
    assert "Wave 1 (canary)" in planned and "Run wave 1" in planned and "Roll back" not in planned
    assert planned.count("waiting") == 2

    canary = await erin.post(f"{rollout}/advance", data={"csrf_token": token}, follow_redirects=True)
    shown = _main(canary)
    assert "Wave 1 ran: 1 upgraded." in shown and "Run wave 2" in shown and "Roll back wave 1" in shown
    wave_one = shown.split('id="wave-1"', 1)[1].split("</section>", 1)[0]
    assert "Upgraded" in wave_one and "1.0.0" in wave_one and "Alpha-Customer" in wave_one
    assert await _version(api, world.a, first, deployments[first]) == "1.1.0"
    assert await _version(api, world.a, second, deployments[second]) == "1.0.0"

    back = await erin.post(f"{rollout}/waves/0/rollback", data={"csrf_token": token}, follow_redirects=True)
    assert "Wave 1 rolled back" in _main(back) and "Rolled back" in _main(back)
    assert await _version(api, world.a, first, deployments[first]) == "1.0.0"
    early = await erin.post(f"{rollout}/waves/1/rollback", data={"csrf_token": token})
    assert early.status_code == 422 and "wave 1 has not run" in _main(early)

    rest = await erin.post(f"{rollout}/advance", data={"csrf_token": token}, follow_redirects=True)
    assert "Wave 2 ran: 1 upgraded." in _main(rest) and "Completed" in _main(rest)
    assert await _version(api, world.a, second, deployments[second]) == "1.1.0"
    over = await erin.post(f"{rollout}/advance", data={"csrf_token": token})
    assert over.status_code == 409 and "every wave of this rollout has run" in _main(over)
    listing = _main(await erin.get(ROLLOUTS))
    assert f"{HANDOVER} → 1.1.0" in listing and "2 of 2" in listing


async def test_another_partner_sees_nothing_of_the_library_or_its_rollouts(
    erin: httpx.AsyncClient, bruno: httpx.AsyncClient, api: httpx.AsyncClient, world: World
) -> None:
    editor = await _fork(erin, HANDOVER, key="alpha-handover")
    token = csrf_token((await erin.get(editor)).text)
    assert (
        await erin.post(f"{editor}/publish", data={"csrf_token": token, "publish-version": "1.0.0"})
    ).status_code == 303
    await _deploy(api, world.a, str(world.a.customer.customer_id), "alpha-handover")
    made = await erin.post(
        f"{ROLLOUTS}/new",
        data={
            "csrf_token": token,
            "release": "alpha-handover@1.0.0",
            f"wave-{world.a.customer.customer_id}": "canary",
        },
    )
    assert made.status_code == 303, made.text
    rollout = httpx.URL(made.headers["location"]).path

    theirs = await bruno.get(LIBRARY)
    assert (
        theirs.status_code == 200
        and "alpha-handover" not in theirs.text
        and "No templates in your library yet" in theirs.text
    )
    btoken = csrf_token(theirs.text)
    for path in (editor, f"{editor}?tab=form", f"{editor}/diff", rollout):
        assert (await bruno.get(path)).status_code == 404, path
    text = _textarea(await erin.get(editor))
    for path, data in (
        (f"{editor}/draft", {"yaml": text}),
        (f"{editor}/check", {"yaml": text}),
        (f"{editor}/form", {"version": "2.0.0"}),
        (f"{editor}/publish", {"publish-version": "2.0.0"}),
        (f"{editor}/versions/1.0.0/deprecate", {}),
        (f"{rollout}/advance", {}),
        (f"{rollout}/waves/0/rollback", {}),
    ):
        assert (await bruno.post(path, data={"csrf_token": btoken, **data})).status_code == 404, path
    assert "alpha-handover" not in (await bruno.get(f"{ROLLOUTS}/new")).text
    assert "alpha-handover" not in (await bruno.get(ROLLOUTS)).text
    # A release of the first partner's library named in a form is no choice of the second's.
    refused = await bruno.post(
        f"{ROLLOUTS}/new",
        data={
            "csrf_token": btoken,
            "release": "alpha-handover@1.0.0",
            f"wave-{world.a.customer.customer_id}": "canary",
        },
    )
    assert refused.status_code == 422 and 'id="release-error"' in refused.text
    assert (await _api_library(api, world.b)) == []
    # Nothing happened to the first partner's rollout.
    assert "Run wave 1" in _main(await erin.get(rollout))


async def test_customer_staff_have_no_library(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    admin = await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/customers/{world.a.customer.customer_id}/users",
        key=world.a.customer.key,
        email="cara@alpha-customer.example",
        role="customer_admin",
    )
    try:
        assert (await admin.get(LIBRARY)).status_code == 403
        assert (await admin.get(ROLLOUTS)).status_code == 403
        assert (await admin.get(f"{LIBRARY}/{uuid.uuid4()}")).status_code == 403
    finally:
        await admin.aclose()
