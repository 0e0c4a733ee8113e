"""API shapes of price books, plans and subscriptions (input and output kept apart)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from andon.billing.pricing.money import Currency

BookKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
PlanKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,62}$")]


class PriceBookCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: BookKey
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    currency: Currency


class PlanVersionRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    key: str
    version: int
    name: str
    created_at: datetime
    created_by: str | None
    # The ``Plan`` document as stored (see billing/pricing/prices.py).
    document: dict[str, Any]


class PriceBookRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    key: str
    name: str
    currency: str
    # "operator" (wholesale prices to partners) or "partner" (retail prices to its customers).
    owner: str
    partner_id: uuid.UUID | None
    # The newest version of each plan.
    plans: list[PlanVersionRead]


class SubscriptionChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Start a subscription, or move it to another plan (or a newer version of the same one)."""

    price_book_id: uuid.UUID
    plan: PlanKey
    # A specific version; the newest when left out.
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # When it takes effect (UTC); now when left out.
    at: datetime | None = None


class SubscriptionCancel(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The moment it ends (UTC); now when left out.
    at: datetime | None = None


class SegmentRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    plan_version_id: uuid.UUID
    plan: str
    plan_name: str
    version: int
    currency: str
    starts_at: datetime
    ends_at: datetime | None
    trial_ends_at: datetime | None


class SubscriptionRead(msgspec.Struct, kw_only=True):
    # The segment in force now (None: not subscribed, or cancelled).
    current: SegmentRead | None
    # Every segment, oldest first: each plan change ends one and starts the next.
    history: list[SegmentRead]
