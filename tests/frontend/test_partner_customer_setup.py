"""The rest of the onboarding wizard, without JavaScript: a customer's shift calendars written one
shift a line, its logo, and the at-a-glance checklist of what is done and what comes next."""

from __future__ import annotations

import io

import httpx
import pytest
from litestar import Litestar
from PIL import Image

from andon.tenants.plant.shift_text import ShiftTextError, format_days, parse_shifts
from tests.support.browser import csrf_token, new_user_signed_in
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio


def test_shift_lines_read_as_people_write_them() -> None:
    shifts = parse_shifts(
        "Early 6:00-14:00 Mon-Fri\n\nNight 22:00 - 06:00 sat-sun\nAll 08:00-16:00\nX 1:00-2:00 Mon,Wed"
    )
    assert [(s["name"], s["start"], s["end"], s["days"]) for s in shifts] == [
        ("Early", "06:00", "14:00", [1, 2, 3, 4, 5]),
        ("Night", "22:00", "06:00", [6, 7]),
        ("All", "08:00", "16:00", [1, 2, 3, 4, 5, 6, 7]),
        ("X", "01:00", "02:00", [1, 3]),
    ]
    assert [format_days(s["days"]) for s in shifts] == ["Mon-Fri", "Sat,Sun", "daily", "Mon,Wed"]
    assert parse_shifts("Wrap 22:00-06:00 Sun-Mon")[0]["days"] == [1, 7]
    with pytest.raises(ShiftTextError) as bad:
        parse_shifts("no times here\nLate 25:00-26:00\nOdd 01:00-02:00 Funday")
    assert [p.split(":")[0] for p in bad.value.problems] == ["line 1", "line 2", "line 3"]


async def test_shift_calendar_logo_and_checklist(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    browser = await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/partners/{world.a.partner_id}/users",
        key=world.a.key,
        email="pat@alpha.example",
        role="partner_admin",
    )
    url = f"/partner/customers/{world.a.customer.customer_id}"
    detail = await browser.get(url)
    assert detail.status_code == 200
    assert "Plant imported" in detail.text and "Shift calendars set" in detail.text
    token = csrf_token(detail.text)

    wrong = await browser.post(
        f"{url}/shift-calendars",
        data={"csrf_token": token, "site_id": str(world.a.customer.site_id), "name": "Plant", "shifts": "Early 6-14"},
    )
    assert wrong.status_code == 422 and "line 1: write it as" in wrong.text
    assert 'aria-describedby="shift-help shifts-error" aria-invalid="true"' in wrong.text
    assert "Early 6-14</textarea>" in wrong.text  # what was typed stays
    foreign = await browser.post(
        f"{url}/shift-calendars",
        data={"csrf_token": token, "site_id": str(world.b.customer.site_id), "name": "X", "shifts": "A 01:00-02:00"},
    )
    assert foreign.status_code == 422  # another customer's site
    before = (await browser.get(url)).text.count("<caption>")

    added = await browser.post(
        f"{url}/shift-calendars",
        data={
            "csrf_token": token,
            "site_id": str(world.a.customer.site_id),
            "name": "Press shop",
            "shifts": "Early 06:00-14:00 Mon-Fri\nWeekend 06:00-18:00 Sat-Sun",
        },
    )
    assert added.status_code == 303
    shown = await browser.get(added.headers["location"])
    assert "Shift calendar &#39;Press shop&#39; added." in shown.text
    assert shown.text.count("<caption>") == before + 1
    assert "<td>Weekend</td><td>06:00</td><td>18:00</td><td>Sat,Sun</td>" in shown.text

    out = io.BytesIO()
    Image.new("RGB", (120, 40), (0, 80, 0)).save(out, format="PNG")
    svg = await browser.post(
        f"{url}/logo",
        data={"csrf_token": token},
        files={"logo": ("logo.svg", b"<svg><script>alert(1)</script></svg>", "image/svg+xml")},
    )
    assert svg.status_code == 415 and "SVG images can carry scripts" in svg.text and "None yet." in svg.text
    logo = await browser.post(
        f"{url}/logo", data={"csrf_token": token}, files={"logo": ("logo.png", out.getvalue(), "image/png")}
    )
    assert logo.status_code == 303
    assert "A logo is set." in (await browser.get(url)).text
    await browser.aclose()


async def test_an_address_taken_in_another_organisation_is_a_field_error(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    """E-mail addresses are global; the check must see past row-level security (another partner's
    customer's users), or PostgreSQL's unique index answers with a bare conflict instead."""
    elsewhere = await api.post(
        f"/api/v1/customers/{world.b.customer.customer_id}/users",
        headers={"Authorization": f"Bearer {world.b.customer.key}"},
        json={"email": "taken@bravo-customer.example", "display_name": "Taken", "grants": [{"role": "technician"}]},
    )
    assert elsewhere.status_code == 201, elsewhere.text
    browser = await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/partners/{world.a.partner_id}/users",
        key=world.a.key,
        email="pat@alpha.example",
        role="partner_admin",
    )
    form = await browser.get("/partner/customers/new")
    refused = await browser.post(
        "/partner/customers/new",
        data={
            "csrf_token": csrf_token(form.text),
            "name": "Gamma Mills",
            "slug": "gamma-mills",
            "default_timezone": "UTC",
            "admin_name": "Gus",
            "admin_email": "taken@bravo-customer.example",
        },
    )
    assert refused.status_code == 422 and 'id="admin_email-error"' in refused.text, refused.text[-600:]
    assert "Gamma Mills" not in (await browser.get("/partner/customers")).text
    await browser.aclose()
