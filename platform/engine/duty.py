"""Who a ladder's targets name at the moment a level fires.

The engine knows the customer's users and its partner's support people (identity is kernel); who is
on shift is the tenants domain's to say, so the app and the scheduler process inject it as
``OnDuty`` (as the events ingress is given ``ResolvePlant``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.engine.definition import Target
from andon.platform.engine.repository import PeopleRepository
from andon.platform.tenancy.context import TenantContext


@dataclass(frozen=True, slots=True)
class Person:
    user_id: uuid.UUID | None
    email: str
    name: str
    # Why they were paged: "role supervisor, shift Early", "user", "partner support".
    via: str

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id) if self.user_id else None,
            "email": self.email,
            "name": self.name,
            "via": self.via,
        }


# (session, tenant, site_id, role, at, on_shift) -> the people of that role at the site: on the shift
# on duty at ``at`` (on_shift), or on any of its shifts.
OnDuty = Callable[[AsyncSession, TenantContext, uuid.UUID, str, datetime, bool], Awaitable[list[Person]]]


async def nobody_on_duty(
    session: AsyncSession, tenant: TenantContext, site_id: uuid.UUID, role: str, at: datetime, on_shift: bool
) -> list[Person]:
    """The default without a shift directory: role targets resolve to nobody (the page records it)."""
    return []


async def resolve_targets(
    session: AsyncSession,
    tenant: TenantContext,
    targets: Sequence[Target],
    *,
    site_id: uuid.UUID | None,
    at: datetime,
    on_duty: OnDuty,
) -> tuple[list[Person], list[dict[str, Any]]]:
    """The people to page (each once, in target order) and each target with how many it found."""
    people: dict[str, Person] = {}
    found: list[dict[str, Any]] = []
    repo = PeopleRepository(session, tenant)
    for target in targets:
        named: list[Person] = []
        if target.role is not None:
            if site_id is not None:
                named = await on_duty(session, tenant, site_id, target.role, at, target.on_shift)
        elif target.user is not None:
            named = [Person(u.id, u.email, u.display_name, "user") for u in await repo.members([target.user])]
        elif target.partner_support:
            named = [
                Person(u.id, u.email, u.display_name, f"partner {role.removeprefix('partner_')}")
                for u, role in await repo.partner_support()
            ]
        for person in named:
            people.setdefault(str(person.user_id or person.email), person)
        found.append({**_describe(target), "found": len(named)})
    return list(people.values()), found


def _describe(target: Target) -> dict[str, Any]:
    if target.role is not None:
        return {"role": target.role, "on_shift": target.on_shift}
    if target.user is not None:
        return {"user": target.user}
    return {"partner_support": True}
