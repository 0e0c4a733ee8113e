"""Outbound connections (a tenant's configured instance of a connector type) and the record of calls."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.crypto.sealed import SEALED_MAP
from andon.platform.db.base import Base, TenantOwnedMixin
from andon.platform.db.types import JSONType, UTCDateTime


class OutboundConnection(TenantOwnedMixin, Base):
    __tablename__ = "outbound_connections"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    # What workflows name it by: an action step's capability is "<key>.<capability>".
    key: Mapped[str] = mapped_column(String(60), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # {secret name: sealed value}; never returned, logged or audited (write-only fields).
    secrets_sealed: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict, info=SEALED_MAP)
    # An on-premise relay target may be a private address; nothing else may.
    relay_target: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    timeout_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=10)
    # Calls a second to this system from each worker process (the vendor's own limit, shared out).
    rate_per_second: Mapped[int] = mapped_column(Integer, nullable=False, default=10)
    last_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_check_ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    last_check: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)


class ConnectorCall(TenantOwnedMixin, Base):
    """One call to a customer's system: what, how it went and how long it took, with a redacted summary."""

    __tablename__ = "connector_calls"
    __table_args__ = (
        Index("ix_connector_calls_connection_created", "connection_id", "created_at"),
        # The usage collector reads every tenant's new calls in this order.
        Index("ix_connector_calls_created_id", "created_at", "id"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("outbound_connections.id", ondelete="CASCADE"), nullable=False
    )
    capability: Mapped[str] = mapped_column(String(60), nullable=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    step_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # ok, or the error kind (unavailable, failed, invalid, forbidden, not_found, circuit_open, limited).
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    latency_ms: Mapped[float] = mapped_column(nullable=False, default=0.0)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The inputs' shape with every value of a secret replaced, cut to a few hundred characters.
    summary: Mapped[str] = mapped_column(String(500), nullable=False, default="")
