"""Which columns hold sealed secrets: marked on the models, so key rotation finds every one of them.

``info=SEALED``: the column holds one token from ``SecretBox.seal``; ``info=SEALED_MAP``: a JSON object
of {name: token}. A test fails on a ``*_sealed`` column without a mark.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Column, MetaData

Shape = Literal["text", "map"]
SEALED: dict[str, Any] = {"sealed": "text"}
SEALED_MAP: dict[str, Any] = {"sealed": "map"}


def sealed_columns(metadata: MetaData) -> list[tuple[Column[Any], Shape]]:
    found: list[tuple[Column[Any], Shape]] = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        for column in table.columns:
            shape = column.info.get("sealed")
            if shape in ("text", "map"):
                found.append((column, shape))
    return found
