"""From a user and their grants to the Principal every guard and repository understands."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from andon.platform.auth.rbac import permissions_for
from andon.platform.db.base import OrgOwnedMixin
from andon.platform.identity.models import LoginSession, RoleGrant, User
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind


def principal_at_node(
    owner: OrgOwnedMixin,
    roles: Sequence[str],
    *,
    kind: SubjectKind,
    subject_id: uuid.UUID | None,
    label: str,
    site_ids: frozenset[uuid.UUID] | None = None,
    session: LoginSession | None = None,
) -> Principal:
    """A caller standing at ``owner``'s org node with ``roles`` (only roles of that node's kind count)."""
    org_kind = OrgKind(owner.org_kind)
    return Principal(
        subject_kind=kind,
        subject_id=subject_id,
        label=label,
        org_kind=org_kind,
        partner_id=owner.partner_id if org_kind is OrgKind.PARTNER else None,
        customer_id=owner.tenant_id if org_kind is OrgKind.CUSTOMER else None,
        permissions=permissions_for(tuple(roles), org_kind),
        site_ids=site_ids,
        session_id=session.id if session else None,
        csrf_token=session.csrf_token if session else None,
    )


def principal_for_user(user: User, grants: Sequence[RoleGrant], session: LoginSession | None = None) -> Principal:
    org_kind = OrgKind(user.org_kind)
    site_ids: frozenset[uuid.UUID] | None = None
    if org_kind is OrgKind.CUSTOMER and grants and all(g.scope_kind == "site" for g in grants):
        # Only site-level grants: the user sees those sites and nothing else of the customer.
        site_ids = frozenset(g.scope_id for g in grants if g.scope_id is not None)
    return principal_at_node(
        user,
        [g.role for g in grants],
        kind=SubjectKind.USER,
        subject_id=user.id,
        label=f"user {user.email}",
        site_ids=site_ids,
        session=session,
    )
