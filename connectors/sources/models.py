"""Source connections (how a vendor system delivers events to one customer) and their deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.crypto.sealed import SEALED
from andon.platform.db.base import Base, TenantOwnedMixin
from andon.platform.db.types import JSONType, UTCDateTime

# The columns that hold secrets: sealed, and never written to the audit trail or returned by a read.
SECRET_COLUMNS = frozenset({"secret_sealed", "previous_secret_sealed"})


class SourceConnection(TenantOwnedMixin, Base):
    """A way in for one vendor system: where it delivers, how its deliveries prove who sent them, and
    the CloudEvents ``source`` and ``type`` its plain payloads are stamped with."""

    __tablename__ = "source_connections"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_source_connections_kind_next_poll", "kind", "next_poll_at"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # webhook (the vendor pushes to /hooks/<id>), mqtt (Andon subscribes), rest_poll and drop_folder
    # (Andon fetches on a schedule).
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="webhook")
    # What the kind needs: the MQTT topic filter, the polled URL and its cursor parameter, the folder.
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # JMESPath expressions per envelope attribute that turn a vendor payload into events (None: the
    # payload is a CloudEvent, or the data of ``event_type``).
    mapping: Mapped[dict[str, str] | None] = mapped_column(JSONType, nullable=True)
    # Pollers: where the last fetch ended (resumed from after a restart) and when the next one is due.
    cursor: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    source: Mapped[str] = mapped_column(String(500), nullable=False)
    # None: the connection takes CloudEvents only.
    event_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    verifier: Mapped[str] = mapped_column(String(30), nullable=False)
    signature_header: Mapped[str | None] = mapped_column(String(100), nullable=True)
    signature_prefix: Mapped[str] = mapped_column(String(50), nullable=False, default="")
    digest_encoding: Mapped[str] = mapped_column(String(10), nullable=False, default="hex")
    # The webhook signing secret, or the credential a poller presents; None for kinds that need none.
    secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True, info=SEALED)
    # The secret before the last rotation, still accepted until it expires (senders switch over).
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True, info=SEALED)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tolerance_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=300)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    deliveries_accepted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    deliveries_duplicate: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    deliveries_refused: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_delivery_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_delivery_outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)


class WebhookDelivery(TenantOwnedMixin, Base):
    """One request to a connection's hook and what became of it, for the admin who sets a vendor up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_connection_received", "tenant_id", "connection_id", "created_at"),)

    connection_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("source_connections.id", ondelete="CASCADE"), nullable=False
    )
    webhook_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # accepted, duplicate or refused
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    # Why it was refused, in more detail than the sender is told (a wrong signature and a stale
    # timestamp look the same from outside).
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Andon's ids of the events the delivery carried (new or found again).
    event_ids: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
