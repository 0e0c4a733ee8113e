"""Scoped, hashed API keys for machines and integrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, OrgOwnedMixin, RecordMixin
from andon.platform.db.types import JSONType, UTCDateTime


class ApiKey(OrgOwnedMixin, RecordMixin, Base):
    """A key belongs to one org node (platform, a partner, or a customer) and carries roles there.

    Only the SHA-256 of the secret is stored: keys are 256-bit random, so a slow hash adds nothing.
    """

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    roles: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
