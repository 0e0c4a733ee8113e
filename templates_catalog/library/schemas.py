"""The template catalog as the API shows it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from andon.templates_catalog.dsl.load import MAX_BYTES


class TriggerRead(msgspec.Struct, kw_only=True):
    event_type: str
    when: str | None


class BindingRead(msgspec.Struct, kw_only=True):
    name: str
    title: str
    description: str
    capabilities: list[str]
    types: list[str]


class StepSummary(msgspec.Struct, kw_only=True):
    key: str
    kind: str
    title: str
    next: list[str]


class TemplateSummary(msgspec.Struct, kw_only=True):
    key: str
    version: str
    name: str
    summary: str
    category: str
    icon: str
    owner: str
    # "catalog": shipped with Andon.
    source: str
    triggers: list[str]


class TemplateRead(TemplateSummary, kw_only=True):
    description: str
    trigger_rules: list[TriggerRead]
    parameters: dict[str, Any]
    requires: list[BindingRead]
    messages: dict[str, str]
    steps: list[StepSummary]
    yaml: str


class TemplateCheck(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    yaml: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BYTES)]


class TemplateProblem(msgspec.Struct, kw_only=True):
    field: str
    line: int | None
    message: str


class TemplateVerdict(msgspec.Struct, kw_only=True):
    ok: bool
    errors: list[TemplateProblem]
    template: TemplateSummary | None = None


# --- a partner's library ----------------------------------------------------------------------------------


class ForkCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The catalog template copied.
    template: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$")]
    # The fork's own key in the library; default the catalog's.
    key: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$")] | None = None


class VersionRead(msgspec.Struct, kw_only=True):
    version: str
    status: str
    created_at: datetime
    published_at: datetime | None
    published_by: str | None
    deprecated_at: datetime | None


class LibraryTemplateRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    key: str
    name: str
    upstream_key: str | None
    upstream_version: str | None
    # The catalog's version when it is newer than the one forked (time to look at what changed).
    upstream_newer: str | None
    latest_published: str | None
    draft: str | None
    versions: list[VersionRead]


class VersionDiff(msgspec.Struct, kw_only=True):
    base: str
    head: str
    # A unified diff of the two YAML documents ("" when they are the same).
    diff: str


# --- the test bench ---------------------------------------------------------------------------------------


class BenchRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    yaml: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BYTES)]
    # A sample event as a workflow sees it: type, subject, severity, data, asset_ref, ...
    event: dict[str, Any]
    params: dict[str, Any] = {}
    # What each capability answers ({"cmms.create_work_order": {"work_order_id": "WO-1"}}); default {}.
    answers: dict[str, Any] = {}
    # How approvals go, by step key: "approved" (default), "rejected" or "expired".
    decisions: dict[str, Literal["approved", "rejected", "expired"]] = {}


class BenchStepRead(msgspec.Struct, kw_only=True):
    key: str
    kind: str
    title: str
    status: str
    inputs: Any
    output: Any
    next: list[str]
    note: str


class BenchReport(msgspec.Struct, kw_only=True):
    ok: bool
    outcome: str
    error: str | None
    errors: list[TemplateProblem]
    params: dict[str, Any]
    steps: list[BenchStepRead]
