"""Roles are named bundles of ``resource:action`` permissions, each grantable at one kind of org node.

Permissions granted at a partner node reach that partner's customers (a partner administers the
plants it onboards); nothing granted at a customer node reaches another customer.
"""

from __future__ import annotations

from dataclasses import dataclass

from andon.platform.tenancy.principal import OrgKind


class P:
    """Permission names; a route declares exactly one of these."""

    PARTNERS_READ = "partners:read"
    PARTNERS_WRITE = "partners:write"
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    PLANT_READ = "plant:read"
    PLANT_WRITE = "plant:write"
    ONBOARDING_IMPORT = "onboarding:import"
    API_KEYS_READ = "api_keys:read"
    API_KEYS_WRITE = "api_keys:write"
    AUDIT_READ = "audit:read"
    ROLES_READ = "roles:read"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    IDENTITY_READ = "identity:read"
    IDENTITY_WRITE = "identity:write"
    BRANDING_WRITE = "branding:write"
    EVENTS_READ = "events:read"
    EVENTS_WRITE = "events:write"
    ALERTS_WRITE = "alerts:write"
    CONNECTIONS_READ = "connections:read"
    CONNECTIONS_WRITE = "connections:write"
    WORKFLOWS_READ = "workflows:read"
    WORKFLOWS_WRITE = "workflows:write"
    RUNS_READ = "runs:read"
    RUNS_WRITE = "runs:write"
    TASKS_WRITE = "tasks:write"
    APPROVALS_SIGN = "approvals:sign"
    BILLING_READ = "billing:read"
    BILLING_WRITE = "billing:write"


ALL_PERMISSIONS: frozenset[str] = frozenset(value for name, value in vars(P).items() if not name.startswith("_"))


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    title: str
    org_kind: OrgKind
    permissions: frozenset[str]
    description: str


def _role(name: str, title: str, org_kind: OrgKind, description: str, *perms: str) -> Role:
    unknown = set(perms) - ALL_PERMISSIONS
    if unknown:
        raise ValueError(f"role {name} names unknown permissions {sorted(unknown)}")
    return Role(name, title, org_kind, frozenset(perms), description)


_PLANT_ALL = (P.PLANT_READ, P.PLANT_WRITE, P.ONBOARDING_IMPORT)
_KEYS_ALL = (P.API_KEYS_READ, P.API_KEYS_WRITE)
_PEOPLE_ALL = (P.USERS_READ, P.USERS_WRITE, P.IDENTITY_READ, P.IDENTITY_WRITE)
_CONNECTIONS_ALL = (P.CONNECTIONS_READ, P.CONNECTIONS_WRITE)
_WORKFLOWS_ALL = (P.WORKFLOWS_READ, P.WORKFLOWS_WRITE, P.RUNS_READ, P.RUNS_WRITE, P.TASKS_WRITE)
# People on the floor: see runs, step in when one is stuck, do their tasks.
_RUNS_FLOOR = (P.RUNS_READ, P.RUNS_WRITE, P.TASKS_WRITE, P.APPROVALS_SIGN)

ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        _role(
            "platform_operator",
            "Platform operator",
            OrgKind.PLATFORM,
            "Creates partners and watches the platform; no plant data without delegation.",
            P.PARTNERS_READ,
            P.PARTNERS_WRITE,
            P.CUSTOMERS_READ,
            *_KEYS_ALL,
            *_PEOPLE_ALL,
            P.AUDIT_READ,
            P.ROLES_READ,
            P.BILLING_READ,
            P.BILLING_WRITE,
        ),
        _role(
            "partner_admin",
            "Partner administrator",
            OrgKind.PARTNER,
            "Onboards customers and their plants, manages the partner's keys.",
            P.PARTNERS_READ,
            P.CUSTOMERS_READ,
            P.CUSTOMERS_WRITE,
            P.BRANDING_WRITE,
            *_PLANT_ALL,
            *_KEYS_ALL,
            *_PEOPLE_ALL,
            P.AUDIT_READ,
            P.ROLES_READ,
            P.EVENTS_READ,
            P.EVENTS_WRITE,
            *_CONNECTIONS_ALL,
            P.ALERTS_WRITE,
            *_WORKFLOWS_ALL,
            P.BILLING_READ,
            P.BILLING_WRITE,
        ),
        _role(
            "partner_engineer",
            "Partner engineer",
            OrgKind.PARTNER,
            "Builds and tests workflow templates; reads customer plants.",
            P.PARTNERS_READ,
            P.CUSTOMERS_READ,
            P.PLANT_READ,
            P.ROLES_READ,
            P.EVENTS_READ,
            P.EVENTS_WRITE,
            *_CONNECTIONS_ALL,
            P.WORKFLOWS_READ,
            P.WORKFLOWS_WRITE,
            P.RUNS_READ,
        ),
        _role(
            "partner_support",
            "Partner support",
            OrgKind.PARTNER,
            "Helps customers inside their organisation when delegated.",
            P.PARTNERS_READ,
            P.CUSTOMERS_READ,
            P.PLANT_READ,
            P.ROLES_READ,
            P.EVENTS_READ,
            P.ALERTS_WRITE,
            P.RUNS_READ,
            P.RUNS_WRITE,
        ),
        _role(
            "customer_admin",
            "Customer administrator",
            OrgKind.CUSTOMER,
            "Manages the customer's plants, keys and users.",
            P.CUSTOMERS_READ,
            P.CUSTOMERS_WRITE,
            *_PLANT_ALL,
            *_KEYS_ALL,
            *_PEOPLE_ALL,
            P.AUDIT_READ,
            P.ROLES_READ,
            P.EVENTS_READ,
            P.EVENTS_WRITE,
            *_CONNECTIONS_ALL,
            P.ALERTS_WRITE,
            *_WORKFLOWS_ALL,
            P.APPROVALS_SIGN,
            P.BILLING_READ,
            P.BILLING_WRITE,
        ),
        _role(
            "plant_supervisor",
            "Plant supervisor",
            OrgKind.CUSTOMER,
            "Runs a shift: sees incidents and plant structure.",
            P.CUSTOMERS_READ,
            P.PLANT_READ,
            P.EVENTS_READ,
            P.ALERTS_WRITE,
            *_RUNS_FLOOR,
        ),
        _role(
            "technician",
            "Technician",
            OrgKind.CUSTOMER,
            "Works the tasks assigned to them.",
            P.CUSTOMERS_READ,
            P.PLANT_READ,
            P.EVENTS_READ,
            P.ALERTS_WRITE,
            P.RUNS_READ,
            P.TASKS_WRITE,
        ),
        _role(
            "quality_engineer",
            "Quality engineer",
            OrgKind.CUSTOMER,
            "Handles deviations and containment.",
            P.CUSTOMERS_READ,
            P.PLANT_READ,
            P.EVENTS_READ,
            P.ALERTS_WRITE,
            P.RUNS_READ,
            P.TASKS_WRITE,
            P.APPROVALS_SIGN,
        ),
        _role(
            "finance",
            "Finance",
            OrgKind.CUSTOMER,
            "Reviews usage and invoices, changes the plan.",
            P.CUSTOMERS_READ,
            P.BILLING_READ,
            P.BILLING_WRITE,
        ),
        _role(
            "auditor",
            "Auditor",
            OrgKind.CUSTOMER,
            "Read-only: the audit log and what it refers to.",
            P.CUSTOMERS_READ,
            P.PLANT_READ,
            P.AUDIT_READ,
            P.ROLES_READ,
            P.EVENTS_READ,
            P.CONNECTIONS_READ,
            P.WORKFLOWS_READ,
            P.RUNS_READ,
        ),
        _role(
            "ingest",
            "Machine ingest",
            OrgKind.CUSTOMER,
            "Least privilege for gateways and integrations: send events, read plant structure.",
            P.PLANT_READ,
            P.EVENTS_WRITE,
        ),
    )
}


class UnknownRoleError(ValueError):
    pass


# A role limited to one site may only read the organisation and work on plant data: anything that
# manages people, keys, identity or the audit trail acts on the whole customer and cannot be scoped.
SITE_SCOPED_PERMISSIONS = frozenset(
    {
        P.CUSTOMERS_READ,
        P.PLANT_READ,
        P.PLANT_WRITE,
        P.EVENTS_READ,
        P.ALERTS_WRITE,
        P.RUNS_READ,
        P.RUNS_WRITE,
        P.TASKS_WRITE,
        P.APPROVALS_SIGN,
    }
)


def site_grantable(role_name: str) -> bool:
    role = ROLES.get(role_name)
    return role is not None and role.org_kind is OrgKind.CUSTOMER and role.permissions <= SITE_SCOPED_PERMISSIONS


def permissions_for(role_names: list[str] | tuple[str, ...], org_kind: OrgKind) -> frozenset[str]:
    """The union of the named roles' permissions; roles meant for another node kind grant nothing."""
    granted: set[str] = set()
    for name in role_names:
        role = ROLES.get(name)
        if role is not None and role.org_kind is org_kind:
            granted |= role.permissions
    return frozenset(granted)


def check_grantable(role_names: list[str], org_kind: OrgKind, granter: frozenset[str]) -> None:
    """Refuse unknown roles, roles of another node kind, and grants wider than the granter's own."""
    for name in role_names:
        role = ROLES.get(name)
        if role is None:
            raise UnknownRoleError(f"unknown role '{name}'")
        if role.org_kind is not org_kind:
            raise UnknownRoleError(f"role '{name}' is granted at {role.org_kind.value} level, not {org_kind.value}")
        wider = role.permissions - granter
        if wider:
            raise UnknownRoleError(f"role '{name}' carries permissions you do not hold: {sorted(wider)}")
