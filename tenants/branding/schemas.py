"""API shapes for a partner's brand."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec

Colour = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$", description="#rrggbb")]
Host = Annotated[
    str, msgspec.Meta(pattern=r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
]


class BrandUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    product_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    primary_colour: Colour = "#1f4e79"
    accent_colour: Colour = "#0b6e4f"
    support_email: Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)] | None = None
    support_url: Annotated[str, msgspec.Meta(pattern=r"^https://\S+$", max_length=500)] | None = None
    hosts: Annotated[list[Host], msgspec.Meta(max_length=10)] = msgspec.field(default_factory=list)
    # Limited to safe properties (typography, colours, spacing, borders); anything else is refused.
    custom_css: Annotated[str, msgspec.Meta(max_length=16384)] | None = None


class ContrastCheck(msgspec.Struct, kw_only=True):
    field: str
    ratio: float
    passes: bool
    suggestion: str | None


class BrandRead(msgspec.Struct, kw_only=True):
    partner_id: uuid.UUID
    product_name: str
    primary_colour: str
    accent_colour: str
    support_email: str | None
    support_url: str | None
    hosts: list[str]
    logo_url: str | None
    favicon_url: str | None
    custom_css: str | None
    css: str
    contrast: list[ContrastCheck]
