"""Who is on duty: the people a site's shift calendars roster for a role, in the shift running at a
given moment of the site's local time.

A shift runs from ``start`` to ``end`` local time on each of its ``days`` (ISO weekdays, the day it
starts); an ``end`` at or before ``start`` runs past midnight into the next day, so a Monday night
shift 22:00-06:00 covers Tuesday 03:00. Local time comes from the calendar's IANA time zone, so
daylight-saving changes move the UTC hours of a shift, not its local hours.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.engine.duty import Person
from andon.platform.engine.repository import PeopleRepository
from andon.platform.http.errors import field_error
from andon.platform.identity.models import User
from andon.platform.tenancy.context import TenantContext
from andon.tenants.plant.models import ShiftCalendar
from andon.tenants.plant.repository import ShiftCalendarRepository


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def covers(shift: dict[str, Any], local: datetime) -> bool:
    """Whether the shift is running at this local time."""
    start, end = _minutes(shift["start"]), _minutes(shift["end"])
    now = local.hour * 60 + local.minute
    days = shift.get("days") or [1, 2, 3, 4, 5, 6, 7]
    today = local.isoweekday()
    yesterday = 7 if today == 1 else today - 1
    if start < end:
        return today in days and start <= now < end
    # Past midnight: the evening part belongs to today's shift, the morning part to yesterday's.
    return (today in days and now >= start) or (yesterday in days and now < end)


async def _calendars(session: AsyncSession, tenant: TenantContext, site_id: uuid.UUID) -> list[ShiftCalendar]:
    return list(await ShiftCalendarRepository(session, tenant).list(ShiftCalendar.site_id == site_id, limit=100))


async def _refs(
    session: AsyncSession, tenant: TenantContext, site_id: uuid.UUID, role: str, at: datetime | None
) -> list[tuple[str, str]]:
    """(person reference, shift name) for the role: in the shift running at ``at``, or in any shift."""
    refs: list[tuple[str, str]] = []
    for calendar in await _calendars(session, tenant, site_id):
        local = at.astimezone(ZoneInfo(calendar.timezone)) if at is not None else None
        for shift in calendar.shifts:
            if local is None or covers(shift, local):
                refs += [(ref, shift["name"]) for ref in (shift.get("roster") or {}).get(role, [])]
    return refs


async def _users(session: AsyncSession, tenant: TenantContext, refs: list[tuple[str, str]]) -> list[tuple[User, str]]:
    users = await PeopleRepository(session, tenant).members([ref for ref, _ in refs])
    by_ref = {str(u.id): u for u in users} | {u.email.lower(): u for u in users}
    found: dict[uuid.UUID, tuple[User, str]] = {}
    for ref, shift in refs:
        user = by_ref.get(ref.lower())
        if user is not None:
            found.setdefault(user.id, (user, shift))
    return list(found.values())


async def on_duty(
    session: AsyncSession, tenant: TenantContext, site_id: uuid.UUID, role: str, at: datetime
) -> list[User]:
    """The users rostered for ``role`` in the site's shift running at ``at`` (none between shifts)."""
    return [user for user, _ in await _users(session, tenant, await _refs(session, tenant, site_id, role, at))]


async def duty_people(
    session: AsyncSession, tenant: TenantContext, site_id: uuid.UUID, role: str, at: datetime, on_shift: bool
) -> list[Person]:
    """The engine's ``OnDuty``: the people a ladder's role target pages (wired by the app and the
    scheduler process); ``on_shift=False`` takes the role's people of every shift."""
    refs = await _refs(session, tenant, site_id, role, at if on_shift else None)
    return [
        Person(user.id, user.email, user.display_name, f"role {role}, shift {shift}")
        for user, shift in await _users(session, tenant, refs)
    ]


async def check_rosters(session: AsyncSession, tenant: TenantContext, shifts: list[dict[str, Any]]) -> None:
    """Every person a roster names is a user of this customer (a 422 naming the first who is not)."""
    people = PeopleRepository(session, tenant)
    for i, shift in enumerate(shifts):
        for role, refs in (shift.get("roster") or {}).items():
            found = await people.members(refs) if refs else []
            known = {str(u.id) for u in found} | {u.email.lower() for u in found}
            for j, ref in enumerate(refs):
                if ref.lower() not in known:
                    raise field_error(f"shifts[{i}].roster.{role}[{j}]", f"no user '{ref}' in this customer")
