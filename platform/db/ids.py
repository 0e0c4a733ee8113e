"""Primary keys are UUIDv7: time-ordered, so inserts stay index-friendly and ids sort by creation."""

from __future__ import annotations

import uuid

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    return uuid7()
