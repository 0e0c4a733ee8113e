"""Navigation by persona: each person sees the consoles their organisation kind and permissions open."""

from __future__ import annotations

from dataclasses import dataclass

from andon.platform.auth.rbac import P
from andon.platform.tenancy.principal import OrgKind, Principal


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str
    org_kind: OrgKind
    permission: str


NAV: tuple[NavItem, ...] = (
    NavItem("Partners", "/operator/partners", OrgKind.PLATFORM, P.PARTNERS_READ),
    NavItem("Platform health", "/operator/health", OrgKind.PLATFORM, P.PARTNERS_READ),
    NavItem("Customers", "/partner/customers", OrgKind.PARTNER, P.CUSTOMERS_READ),
    NavItem("Branding", "/partner/branding", OrgKind.PARTNER, P.BRANDING_WRITE),
    NavItem("Template library", "/partner/library", OrgKind.PARTNER, P.WORKFLOWS_READ),
    NavItem("Rollouts", "/partner/rollouts", OrgKind.PARTNER, P.WORKFLOWS_READ),
    NavItem("Billing", "/partner/billing", OrgKind.PARTNER, P.BILLING_READ),
    # The people on shift start at the incidents: the operations console comes first.
    NavItem("Incidents", "/operations/incidents", OrgKind.CUSTOMER, P.EVENTS_READ),
    # What workflows ask of this person: the tasks they do (tasks:write) and the approvals they sign.
    NavItem("Inbox", "/operations/inbox", OrgKind.CUSTOMER, P.TASKS_WRITE),
    NavItem("Alerts", "/operations/alerts", OrgKind.CUSTOMER, P.EVENTS_READ),
    NavItem("Runs", "/operations/runs", OrgKind.CUSTOMER, P.RUNS_READ),
    NavItem("Events", "/operations/events", OrgKind.CUSTOMER, P.EVENTS_READ),
    NavItem("Plant", "/admin/plant", OrgKind.CUSTOMER, P.PLANT_READ),
    NavItem("People", "/admin/users", OrgKind.CUSTOMER, P.USERS_READ),
    NavItem("Sign-in", "/admin/sign-in", OrgKind.CUSTOMER, P.IDENTITY_READ),
    NavItem("API keys", "/admin/api-keys", OrgKind.CUSTOMER, P.API_KEYS_READ),
    NavItem("Connections", "/admin/connections", OrgKind.CUSTOMER, P.CONNECTIONS_READ),
    NavItem("Outbound", "/admin/outbound", OrgKind.CUSTOMER, P.CONNECTIONS_READ),
    NavItem("Workflows", "/admin/templates", OrgKind.CUSTOMER, P.WORKFLOWS_READ),
    NavItem("Billing", "/admin/billing", OrgKind.CUSTOMER, P.BILLING_READ),
    NavItem("Audit trail", "/admin/audit", OrgKind.CUSTOMER, P.AUDIT_READ),
)


def nav_for(principal: object) -> list[NavItem]:
    """The links a signed-in person sees, in order; none for machines or anonymous visitors."""
    if not isinstance(principal, Principal) or principal.session_id is None:
        return []
    return [i for i in NAV if i.org_kind is principal.org_kind and i.permission in principal.permissions]


def home_for(principal: object) -> str:
    """Where ``/`` takes a person: their first console, else their account page."""
    items = nav_for(principal)
    return items[0].href if items else "/account"
