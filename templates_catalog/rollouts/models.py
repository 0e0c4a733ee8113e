"""A partner's staged rollout of one library template version across its customers, wave by wave."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, RecordMixin
from andon.platform.db.types import JSONType

PLANNED = "planned"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"


class Rollout(RecordMixin, Base):
    __tablename__ = "rollouts"

    partner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("partners.id", ondelete="CASCADE"), nullable=False, index=True
    )
    template_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("partner_templates.id", ondelete="CASCADE"), nullable=False
    )
    template_key: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[str] = mapped_column(String(20), nullable=False)
    # Customer ids per wave, in order (the first: the canary customers).
    waves: Mapped[list[list[str]]] = mapped_column(JSONType, nullable=False)
    # The next wave to run (== len(waves) once all ran).
    next_wave: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=PLANNED)
    # {customer id: {"wave", "status", "from_version", "detail"}}
    results: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
