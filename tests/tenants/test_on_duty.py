"""Who is on duty: a site's shift in its local time (overnight shifts, days, daylight saving), and the
people its roster names for a role; the shift text format still reads and writes shifts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.identity.models import User
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from andon.tenants.plant import schemas as ps
from andon.tenants.plant.on_duty import covers, duty_people, on_duty
from andon.tenants.plant.service import PlantService
from andon.tenants.plant.shift_text import parse_shifts
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio
BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = {"name": "Night", "start": "22:00", "end": "06:00", "days": [1, 2, 3, 4, 5]}


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """November 2026 in Berlin: the 23rd is a Monday."""
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("at", "on"),
    [
        (local(23, 22, 0), True),  # Monday night starts
        (local(24, 5, 59), True),  # ... and runs into Tuesday morning
        (local(24, 6, 0), False),  # the end is exclusive
        (local(23, 21, 59), False),
        (local(28, 3, 0), True),  # Saturday 03:00 is Friday's night shift
        (local(28, 22, 30), False),  # no night shift starts on Saturday
        (local(23, 3, 0), False),  # Monday 03:00 would be Sunday's, which has none
    ],
)
def test_an_overnight_shift_belongs_to_the_day_it_starts(at: datetime, on: bool) -> None:
    assert covers(NIGHT, at) is on


def test_a_day_shift_runs_from_start_to_end_on_its_days() -> None:
    early = {"name": "Early", "start": "06:00", "end": "14:00", "days": [1, 2, 3, 4, 5]}
    assert covers(early, local(26, 13, 59)) and not covers(early, local(26, 14, 0))
    assert not covers(early, local(29, 8, 0)), "Sunday"


def test_the_text_format_still_reads_shifts_without_a_roster() -> None:
    assert parse_shifts("Night 22:00-06:00 Mon-Fri") == [NIGHT]
    # A shift without a roster is stored and shown as before rosters existed.
    assert "roster" not in msgspec.to_builtins(ps.Shift(name="Night", start="22:00", end="06:00"))


async def _users(session: AsyncSession, tenant_id: uuid.UUID, *names: str) -> list[User]:
    users = [User(org_kind="customer", tenant_id=tenant_id, email=f"{n}@plant.example", display_name=n) for n in names]
    session.add_all(users)
    await session.flush()
    return users


async def test_on_duty_follows_the_site_calendar_in_its_time_zone(
    world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        ctx = await CustomerService(session, system).open_tenant(c.customer_id)
        ana, lee, nia = await _users(session, c.customer_id, "ana", "lee", "nia")
        await PlantService(session, ctx).update(
            "shift_calendar",
            c.shift_calendar_id,
            ps.ShiftCalendarUpdate(
                shifts=[
                    ps.Shift(name="Early", start="06:00", end="14:00", roster={"supervisor": [ana.email]}),
                    ps.Shift(name="Late", start="14:00", end="22:00", roster={"supervisor": [str(lee.id)]}),
                    ps.Shift(
                        name="Night",
                        start="22:00",
                        end="06:00",
                        days=[1, 2, 3, 4, 5],
                        roster={"supervisor": [nia.email], "maintenance": [ana.email]},
                    ),
                ]
            ),
        )

        async def who(at: datetime, role: str = "supervisor") -> list[str]:
            return [u.display_name for u in await on_duty(session, ctx, c.site_id, role, at.astimezone(UTC))]

        # 13:30 UTC is 14:30 in Berlin (winter time): the Late shift.
        assert await who(datetime(2026, 11, 26, 12, 59, tzinfo=UTC)) == ["ana"]
        assert await who(datetime(2026, 11, 26, 13, 30, tzinfo=UTC)) == ["lee"]
        assert await who(local(27, 23, 0)) == ["nia"]
        assert await who(local(27, 23, 0), "maintenance") == ["ana"]
        assert await who(local(28, 23, 0)) == [], "no one covers Saturday night"
        assert await who(local(26, 10, 0), "quality") == []
        # Summer time: 05:30 UTC on 1 July is 07:30 in Berlin, the Early shift.
        assert await who(datetime(2026, 7, 1, 5, 30, tzinfo=UTC)) == ["ana"]
        everyone = await duty_people(session, ctx, c.site_id, "supervisor", local(26, 10, 0), False)
        assert [p.name for p in everyone] == ["ana", "lee", "nia"]
        assert everyone[0].via == "role supervisor, shift Early"
        # Another customer's site has no one on duty for this one.
        assert await on_duty(session, ctx, world.b.customer.site_id, "supervisor", local(26, 10, 0)) == []
