"""What the operations pages share (events, alerts, incidents): the people on shift open them as well as
the customer's administrators, each page behind its permission, always inside the caller's own
customer (and, for someone granted some sites only, those sites: the repositories narrow to them)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from andon.frontend.customer.console import CustomerConsoleController, optional_id
from andon.platform.alerts.correlation import SEVERITY_RANK
from andon.platform.http.errors import NotFoundError, ValidationFailedError
from andon.platform.http.params import DbSession
from andon.platform.tenancy.context import TenantContext
from andon.tenants.plant.service import PlantService

# Most severe first, as people scan a list.
SEVERITIES: tuple[str, ...] = tuple(sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__, reverse=True))
# Choosers list at most this many sites; a larger plant filters through the API.
SITE_CHOOSER_LIMIT = 1000
T = TypeVar("T")


class OperationsConsoleController(CustomerConsoleController):
    """A part of the operations console; like the admin console, for the customer's own staff only."""

    tags = ["Operations console"]


def options(values: Sequence[str]) -> list[tuple[str, str]]:
    """A chooser's (value, words) pairs for plain words such as statuses."""
    return [(v, v.capitalize()) for v in values]


def chosen(value: str | None, allowed: Sequence[str]) -> str | None:
    """A chooser's value when it is one of its options; a hand-edited address gets the whole list."""
    return value if value in allowed else None


def site_filter(raw: str | None) -> uuid.UUID | None:
    """A site chooser's value; anything but an id is treated as a tampered form (422)."""
    return optional_id(raw, "site_id")


async def sites_of(db_session: DbSession, tenant: TenantContext) -> Sequence[Any]:
    """The sites the caller may see, for a site chooser."""
    rows, _ = await PlantService(db_session, tenant).list("site", limit=SITE_CHOOSER_LIMIT, offset=0)
    return rows


async def plant_name(plant: PlantService, kind: str, node_id: uuid.UUID | None) -> str | None:
    """The name of a site, line or asset; None when there is none or it has been removed since."""
    if node_id is None:
        return None
    try:
        node = await plant.get(kind, node_id)
    except NotFoundError:
        return None
    return str(node.name)


def moment(raw: str | None, field: str) -> datetime | None:
    """A ``datetime-local`` (or ISO 8601) value, read as UTC unless it names its offset."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValidationFailedError(
            f"{field}: not a date and time",
            extra={"errors": [{"field": field, "message": "not a date and time (YYYY-MM-DDTHH:MM)"}]},
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def attempt(errors: dict[str, str], field: str, read: Callable[[], T]) -> T | None:
    """A filter's value, or None with the reason noted in ``errors`` (the page shows it by the field)."""
    try:
        return read()
    except ValidationFailedError as exc:
        problems = exc.extra.get("errors") or [{"message": exc.detail}]
        errors[field] = str(problems[0].get("message", exc.detail))
        return None
