"""Key rotation: every sealed secret re-wrapped under the newest key (``andon secrets rotate``).

Each page of rows is read under row locks, re-wrapped and written in its own transaction, so the
command can run while the application serves and can be interrupted and run again: a value already
under the newest key is left as it is. A value no configured key opens is reported, never dropped.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, MetaData
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.crypto.repository import SealedValues
from andon.platform.crypto.sealed import Shape, sealed_columns
from andon.platform.crypto.secretbox import SecretBox, SecretBoxError


@dataclass(slots=True)
class ColumnReport:
    column: str
    rows: int = 0
    values: int = 0
    rewrapped: int = 0
    # The key ids the values were under before (``legacy``: sealed before envelopes).
    keys_before: Counter[str] = field(default_factory=Counter)
    # "table.column id: why" for each value no configured key opens.
    unreadable: list[str] = field(default_factory=list)


Progress = Callable[[ColumnReport], None]


def _rotate_value(box: SecretBox, value: Any, shape: Shape, report: ColumnReport, where: str) -> Any:
    tokens = value.items() if shape == "map" and isinstance(value, dict) else [("", value)]
    rotated: dict[str, Any] = {}
    for name, token in tokens:
        report.values += 1
        if not isinstance(token, str):
            report.unreadable.append(f"{where}{'.' + name if name else ''}: not a sealed value")
            rotated[name] = token
            continue
        report.keys_before[box.key_id(token)] += 1
        try:
            rotated[name] = box.rotate(token)
        except SecretBoxError as exc:
            report.unreadable.append(f"{where}{'.' + name if name else ''}: {exc}")
            rotated[name] = token
            continue
        if rotated[name] != token:
            report.rewrapped += 1
    return rotated if shape == "map" else rotated[""]


async def _column(
    sessionmaker: async_sessionmaker[AsyncSession],
    box: SecretBox,
    column: Column[Any],
    shape: Shape,
    *,
    dry_run: bool,
    batch: int,
    progress: Progress | None,
) -> ColumnReport:
    report = ColumnReport(f"{column.table.name}.{column.name}")
    after: uuid.UUID | None = None
    while True:
        async with sessionmaker() as session, session.begin():
            values = SealedValues(session, column)
            await values.enter()
            page = await values.page(after, batch, lock=not dry_run)
            for id_, value in page:
                report.rows += 1
                rotated = _rotate_value(box, value, shape, report, f"{report.column} {id_}")
                if rotated != value and not dry_run:
                    await values.replace(id_, rotated)
        if progress is not None:
            progress(report)
        if len(page) < batch:
            return report
        after = page[-1][0]


async def rotate_all(
    sessionmaker: async_sessionmaker[AsyncSession],
    box: SecretBox,
    metadata: MetaData,
    *,
    dry_run: bool = False,
    batch: int = 200,
    progress: Progress | None = None,
) -> list[ColumnReport]:
    """Re-wraps every sealed value under ``box.active``; with ``dry_run``, only counts."""
    return [
        await _column(sessionmaker, box, column, shape, dry_run=dry_run, batch=batch, progress=progress)
        for column, shape in sealed_columns(metadata)
    ]
