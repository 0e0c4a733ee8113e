"""What Andon meters, how each meter aggregates over a period, and which period a record lands in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Aggregation = Literal["sum", "count", "max", "last", "unique"]


@dataclass(frozen=True, slots=True)
class Meter:
    key: str
    title: str
    unit: str
    aggregation: Aggregation
    # For ``unique``: the dimension whose distinct values are counted.
    dimension: str | None = None


METERS: dict[str, Meter] = {
    m.key: m
    for m in (
        Meter("events.ingested", "Events ingested", "event", "sum"),
        Meter("runs.started", "Workflow runs started", "run", "sum"),
        Meter("steps.executed", "Workflow steps executed", "step", "sum"),
        Meter("actions.executed", "Connector actions executed", "action", "sum"),
        Meter("ai.assists", "AI assists", "assist", "sum"),
        Meter("notifications.sent", "Notifications sent", "notification", "sum"),
        Meter("connector.calls", "Connector calls", "call", "sum"),
        # A gauge reported over the period: what counts is its last value.
        Meter("assets.active", "Active assets", "asset", "last"),
        Meter("seats", "Seats", "seat", "max"),
        Meter("sites.active", "Sites with activity", "site", "unique", dimension="site"),
    )
}

# A record that arrives this long after its period ended still lands in it; a later one lands in the
# period it arrived in, flagged late (a closed invoice never changes).
GRACE = timedelta(days=3)


def period_of(moment: datetime) -> str:
    """The calendar month (UTC) a moment falls in, as ``YYYY-MM``."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def period_end(period: str) -> datetime:
    year, month = (int(part) for part in period.split("-"))
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def landing(occurred_at: datetime, recorded_at: datetime) -> tuple[str, bool]:
    """The period a record counts in, and whether it came too late for its own."""
    own = period_of(occurred_at)
    if recorded_at <= period_end(own) + GRACE:
        return own, False
    return period_of(recorded_at), True
