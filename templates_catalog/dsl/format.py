"""The template format: a versioned, parameterised workflow for one production-support situation.

A template is YAML (``templates_catalog/catalog/*.yaml``, a partner's library, an editor) checked by
``load.py`` against these structs; ``GET /api/v1/templates/schema`` publishes their JSON Schema for
editors. It adds to a workflow definition what a partner needs to sell it:

- ``parameters``: a JSON Schema (type object); deployments fill it, and it renders as the
  enable-workflow form. Steps read the values as ``params.<name>`` (CEL) or ``{{ params.<name> }}``.
- ``requires``: the systems it acts through, each a *binding* with the capabilities it calls. Steps
  name ``<binding>.<capability>``; a deployment binds each binding to one of the customer's outbound
  connections, and the workflow it creates calls ``<connection key>.<capability>``.
- ``messages``: named texts (Jinja over the run context) a partner rewrites in its own voice; a
  string in the workflow that is exactly ``@messages.<name>`` is replaced by that text.
- ``@params.<name>``, a whole string in the workflow, is replaced by the deployment's value of that
  parameter, so parameters reach fields that are not templates (an SLA's seconds, a role, a
  threshold); such a parameter needs a default, which is what the template is checked with.
- ``triggers``: event types with an optional CEL filter over ``event``, ``alert`` and ``params``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from andon.platform.engine.definition import Definition

TemplateKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$")]
# Semantic versioning's core (MAJOR.MINOR.PATCH); published versions are immutable.
SemVer = Annotated[str, msgspec.Meta(pattern=r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$")]
BindingName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
CapabilityKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
MessageName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Line = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Category = Literal["downtime", "quality", "supply", "field", "maintenance", "engineering", "shift", "orders", "other"]

# A whole string that stands for a message's text or a parameter's value.
PLACEHOLDER = re.compile(r"^@(messages|params)\.([A-Za-z_][A-Za-z0-9_]{0,62})$")


class Trigger(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    event_type: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    # CEL over ``event``, ``alert`` and ``params``; absent: every event of the type.
    when: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | None = None


class Binding(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Line
    capabilities: Annotated[list[CapabilityKey], msgspec.Meta(min_length=1, max_length=30)]
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    # Connector types known to offer these capabilities (a hint for the binding form; any
    # connection whose type has every capability may be bound).
    types: list[Annotated[str, msgspec.Meta(min_length=1, max_length=40)]] = msgspec.field(default_factory=list)


class Template(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    template: TemplateKey
    version: SemVer
    name: Line
    summary: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    category: Category
    icon: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,39}$")] = "workflow"
    owner: Line = "Andon"
    description: Annotated[str, msgspec.Meta(max_length=10_000)] = ""
    triggers: Annotated[list[Trigger], msgspec.Meta(max_length=10)] = msgspec.field(default_factory=list)
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object", "properties": {}})
    requires: dict[BindingName, Binding] = msgspec.field(default_factory=dict)
    messages: dict[MessageName, Annotated[str, msgspec.Meta(max_length=10_000)]] = msgspec.field(default_factory=dict)
    # A workflow definition (the engine's ``Definition``) with placeholders; checked once they are
    # filled in (``load.py``), so a placeholder may stand where the definition wants a number.
    workflow: dict[str, Any]


def template_schema() -> dict[str, Any]:
    """The JSON Schema of the format, for editors: ``workflow`` described by the engine's definition,
    each value of which may also be a placeholder."""
    (template, definition), components = msgspec.json.schema_components([Template, Definition])
    components["Template"]["properties"]["workflow"] = definition
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Andon workflow template",
        **template,
        "$defs": components,
    }
    return schema
