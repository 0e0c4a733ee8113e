"""Deployments as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

TemplateKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$")]
WorkflowKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,99}$")]
ConnectionKey = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
SemVer = Annotated[str, msgspec.Meta(pattern=r"^\d{1,6}\.\d{1,6}\.\d{1,6}$")]


class DeploymentCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    template: TemplateKey
    source: Literal["catalog", "partner"] = "catalog"
    # A published version of a partner template; default its latest (the catalog has one version).
    version: SemVer | None = None
    # The workflow key it runs as; default the template's key.
    key: WorkflowKey | None = None
    # The sites whose events start it; empty: every site.
    site_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=500)] = []
    params: dict[str, Any] = {}
    # {binding: the key of one of the customer's outbound connections}
    bindings: dict[str, ConnectionKey] = {}
    messages: dict[str, Annotated[str, msgspec.Meta(max_length=10_000)]] = {}
    enabled: bool = True


class DeploymentUpgrade(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: SemVer
    # Values to change on the way (others are kept).
    params: dict[str, Any] = {}
    bindings: dict[str, ConnectionKey] = {}


class ParameterValue(msgspec.Struct, kw_only=True):
    name: str
    value: Any
    # Where it came from: template (its default), partner, customer, site or deployment.
    source: str


class SiteVariantRead(msgspec.Struct, kw_only=True):
    """Sites whose own values differ from the deployment's: they run as a workflow of their own."""

    site_ids: list[str]
    workflow_id: uuid.UUID
    params: list[ParameterValue]


class DeploymentRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    key: str
    template_key: str
    source: str
    version: str
    site_ids: list[str]
    params: list[ParameterValue]
    # Sites that run with values of their own (set for the site), each group as its own workflow.
    site_variants: list[SiteVariantRead]
    bindings: dict[str, str]
    messages: dict[str, str]
    status: str
    workflow_id: uuid.UUID | None
    previous_version: str | None
    deployed_by: str | None
    created_at: datetime
    updated_at: datetime


class ParameterValues(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Values by parameter name; what is left out is inherited from the level above.
    values: dict[str, Any]


class InheritedValues(msgspec.Struct, kw_only=True):
    template_key: str
    # The template's defaults, and the values set at each level ("" = the customer, else a site id).
    template: dict[str, Any]
    partner: dict[str, Any]
    customer: dict[str, dict[str, Any]] = {}
