"""Who is calling, and which organisation node they act from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum


class OrgKind(StrEnum):
    PLATFORM = "platform"
    PARTNER = "partner"
    CUSTOMER = "customer"


class SubjectKind(StrEnum):
    API_KEY = "api_key"
    USER = "user"
    SERVICE = "service"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Principal:
    subject_kind: SubjectKind
    subject_id: uuid.UUID | None
    label: str
    org_kind: OrgKind
    partner_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    # Site-level grants only: the sites this caller may see inside its customer (None: all).
    site_ids: frozenset[uuid.UUID] | None = None
    # Set when the caller came in with a browser session (CSRF applies to its unsafe requests).
    session_id: uuid.UUID | None = None
    csrf_token: str | None = None

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def is_operator(self) -> bool:
        return self.org_kind is OrgKind.PLATFORM

    def audit_actor(self) -> dict[str, str | None]:
        return {
            "kind": self.subject_kind.value,
            "id": str(self.subject_id) if self.subject_id else None,
            "label": self.label,
            "org": self.org_kind.value,
            "partner_id": str(self.partner_id) if self.partner_id else None,
            "customer_id": str(self.customer_id) if self.customer_id else None,
        }


def system_principal(permissions: frozenset[str], label: str = "system") -> Principal:
    """The actor for CLI and seed work that no person or key performs."""
    return Principal(
        subject_kind=SubjectKind.SYSTEM,
        subject_id=None,
        label=label,
        org_kind=OrgKind.PLATFORM,
        permissions=permissions,
    )
