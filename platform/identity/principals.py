"""From a user and their grants to the Principal every guard and repository understands."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from andon.platform.auth.rbac import permissions_for
from andon.platform.identity.models import LoginSession, RoleGrant, User
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind


def principal_for_user(user: User, grants: Sequence[RoleGrant], session: LoginSession | None = None) -> Principal:
    org_kind = OrgKind(user.org_kind)
    site_ids: frozenset[uuid.UUID] | None = None
    if org_kind is OrgKind.CUSTOMER and grants and all(g.scope_kind == "site" for g in grants):
        # Only site-level grants: the user sees those sites and nothing else of the customer.
        site_ids = frozenset(g.scope_id for g in grants if g.scope_id is not None)
    return Principal(
        subject_kind=SubjectKind.USER,
        subject_id=user.id,
        label=f"user {user.email}",
        org_kind=org_kind,
        partner_id=user.partner_id if org_kind is OrgKind.PARTNER else None,
        customer_id=user.tenant_id if org_kind is OrgKind.CUSTOMER else None,
        permissions=permissions_for(tuple(g.role for g in grants), org_kind),
        site_ids=site_ids,
        session_id=session.id if session else None,
        csrf_token=session.csrf_token if session else None,
    )
