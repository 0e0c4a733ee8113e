"""Shift calendars as people write them: one shift a line, ``Early 06:00-14:00 Mon-Fri``.

Days are optional (every day), a range (``Mon-Fri``, wrapping allowed: ``Sat-Sun``) or a list
(``Mon,Wed,Fri``). A shift may end after midnight (``Night 22:00-06:00``).
"""

from __future__ import annotations

import re
from typing import Any

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LINE = re.compile(r"^(?P<name>.+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})(?:\s+(?P<days>\S.*))?$")


class ShiftTextError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _clock(value: str) -> str | None:
    hours, minutes = (int(part) for part in value.split(":"))
    return f"{hours:02d}:{minutes:02d}" if hours < 24 and minutes < 60 else None


def _days(text: str | None) -> list[int] | None:
    if not text or text.strip().lower() in ("daily", "every day"):
        return [1, 2, 3, 4, 5, 6, 7]
    days: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        ends = part.split("-")
        if any(e[:3] not in DAY_NAMES for e in ends) or len(ends) > 2:
            return None
        first, last = DAY_NAMES.index(ends[0][:3]), DAY_NAMES.index(ends[-1][:3])
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
        days.extend(d + 1 for d in span if d + 1 not in days)
    return sorted(days)


def parse_shifts(text: str) -> list[dict[str, Any]]:
    shifts: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            problems.append(f"line {number}: write it as 'Name HH:MM-HH:MM Mon-Fri'")
            continue
        start, end = _clock(match["start"]), _clock(match["end"])
        days = _days(match["days"])
        if start is None or end is None:
            problems.append(f"line {number}: times run from 00:00 to 23:59")
        elif days is None:
            problems.append(f"line {number}: days are Mon…Sun, as a range (Mon-Fri) or a list (Sat,Sun)")
        else:
            shifts.append({"name": match["name"].strip(), "start": start, "end": end, "days": days})
    if problems:
        raise ShiftTextError(problems)
    if not shifts:
        raise ShiftTextError(["write at least one shift"])
    return shifts


def format_days(days: list[int]) -> str:
    if sorted(days) == [1, 2, 3, 4, 5, 6, 7]:
        return "daily"
    ordered = sorted(days)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{DAY_NAMES[ordered[0] - 1].title()}-{DAY_NAMES[ordered[-1] - 1].title()}"
    return ",".join(DAY_NAMES[d - 1].title() for d in ordered)
