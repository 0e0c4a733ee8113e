"""The seeded demo for ``andon dev``: the operator, two partners, three customers with plants.

It goes through the same services as the API (so every object is audited and validated), and is
idempotent: a second run finds the demo and only reissues keys if their credentials file is gone.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.auth.schemas import ApiKeyCreate
from andon.platform.auth.service import ApiKeyService
from andon.platform.config.settings import Settings
from andon.platform.db.scope import apply_principal_scope
from andon.platform.devmode.billing_demo import seed_billing
from andon.platform.engine.schemas import WorkflowCreate
from andon.platform.engine.service import WorkflowService
from andon.platform.identity.schemas import GrantIn, UserCreate
from andon.platform.identity.service import UserAdmin
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, system_principal
from andon.tenants.branding.schemas import BrandUpdate
from andon.tenants.branding.service import BrandingService
from andon.tenants.onboarding.service import PlantImportService
from andon.tenants.orgs.models import Customer, Partner
from andon.tenants.orgs.schemas import CustomerCreate, PartnerCreate
from andon.tenants.orgs.service import CustomerService, PartnerService
from andon.tenants.plant.schemas import Shift, ShiftCalendarCreate
from andon.tenants.plant.service import PlantService

DATA = Path(__file__).parent / "data"
CREDENTIALS_FILE = "demo-credentials.json"


@dataclass(frozen=True)
class DemoCustomer:
    slug: str
    name: str
    timezone: str
    plant_file: str


@dataclass(frozen=True)
class DemoPartner:
    slug: str
    name: str
    customers: tuple[DemoCustomer, ...]


DEMO: tuple[DemoPartner, ...] = (
    DemoPartner(
        "northwind",
        "Northwind Automation",
        (
            DemoCustomer("acme-castings", "Acme Precision Castings", "Europe/Berlin", "acme-castings.csv"),
            DemoCustomer("helix-packaging", "Helix Packaging", "America/Chicago", "helix-packaging.csv"),
        ),
    ),
    DemoPartner(
        "bluefin",
        "Bluefin Industrial Services",
        (
            DemoCustomer(
                "corvid-automotive", "Corvid Automotive Components", "America/Detroit", "corvid-automotive.csv"
            ),
        ),
    ),
)

# Each partner's own portal: *.localhost resolves to this machine in browsers, so the branded
# sign-in page is one click away at http://<host>:8000/login.
DEMO_BRANDS = {
    "northwind": BrandUpdate(
        product_name="Northwind Ops Center",
        primary_colour="#0e3b5c",
        accent_colour="#00695c",
        support_email="support@northwind.example",
        hosts=["northwind.localhost"],
    ),
    "bluefin": BrandUpdate(
        product_name="Bluefin Connect", primary_colour="#4a1942", accent_colour="#5b2a86", hosts=["bluefin.localhost"]
    ),
}

SHIFTS = [
    Shift(name="Early", start="06:00", end="14:00", days=[1, 2, 3, 4, 5]),
    Shift(name="Late", start="14:00", end="22:00", days=[1, 2, 3, 4, 5]),
    Shift(name="Night", start="22:00", end="06:00", days=[1, 2, 3, 4, 5]),
    Shift(name="Weekend", start="06:00", end="18:00", days=[6, 7]),
]


# One person per persona: (persona, role, e-mail, where: "platform" | partner slug | customer slug).
PEOPLE: tuple[tuple[str, str, str, str], ...] = (
    ("Platform operator", "platform_operator", "operator@andon.example", "platform"),
    ("Partner admin", "partner_admin", "pat.admin@northwind.example", "northwind"),
    ("Partner engineer", "partner_engineer", "erin.engineer@northwind.example", "northwind"),
    ("Partner support", "partner_support", "sam.support@northwind.example", "northwind"),
    ("Customer admin", "customer_admin", "carla.admin@acme-castings.example", "acme-castings"),
    ("Plant supervisor", "plant_supervisor", "sven.supervisor@acme-castings.example", "acme-castings"),
    ("Technician", "technician", "tomas.tech@acme-castings.example", "acme-castings"),
    ("Quality engineer", "quality_engineer", "quinn.quality@acme-castings.example", "acme-castings"),
    ("Finance", "finance", "fiona.finance@acme-castings.example", "acme-castings"),
    ("Auditor", "auditor", "aud.itor@acme-castings.example", "acme-castings"),
)


@dataclass
class Credentials:
    operator: str = ""
    partners: dict[str, str] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)
    logins: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "api_keys": {"operator": self.operator, "partners": self.partners, "customers": self.customers},
            "logins": self.logins,
        }


async def _demo_exists(session: AsyncSession) -> bool:
    system = system_principal(ALL_PERMISSIONS, "demo seed")
    partners, _ = await PartnerService(session, system).list(limit=1, offset=0, q=None)
    return bool(partners)


async def _issue_keys(
    session: AsyncSession, partners: dict[str, Partner], customers: dict[str, Customer]
) -> Credentials:
    system = system_principal(ALL_PERMISSIONS, "demo seed")
    creds = Credentials()
    _, creds.operator = await ApiKeyService(session, system, OrgNode(OrgKind.PLATFORM)).issue(
        ApiKeyCreate(name="demo operator", roles=["platform_operator"])
    )
    for slug, partner in partners.items():
        owner = OrgNode(OrgKind.PARTNER, partner_id=partner.id)
        _, creds.partners[slug] = await ApiKeyService(session, system, owner).issue(
            ApiKeyCreate(name=f"demo {slug} admin", roles=["partner_admin"])
        )
    for slug, customer in customers.items():
        tenant = await CustomerService(session, system).open_tenant(customer.id)
        owner = OrgNode(OrgKind.CUSTOMER, partner_id=customer.partner_id, tenant=tenant)
        _, creds.customers[slug] = await ApiKeyService(session, system, owner).issue(
            ApiKeyCreate(name=f"demo {slug} admin", roles=["customer_admin"])
        )
    return creds


async def _create_demo(session: AsyncSession) -> tuple[dict[str, Partner], dict[str, Customer]]:
    system = system_principal(ALL_PERMISSIONS, "demo seed")
    partners: dict[str, Partner] = {}
    customers: dict[str, Customer] = {}
    for p in DEMO:
        partner = await PartnerService(session, system).create(PartnerCreate(slug=p.slug, name=p.name))
        partners[p.slug] = partner
        if p.slug in DEMO_BRANDS:
            await BrandingService(session, system).update(partner.id, DEMO_BRANDS[p.slug])
        for c in p.customers:
            customer = await CustomerService(session, system).create(
                CustomerCreate(slug=c.slug, name=c.name, default_timezone=c.timezone, partner_id=partner.id)
            )
            customers[c.slug] = customer
            tenant = await CustomerService(session, system).open_tenant(customer.id)
            body = (DATA / c.plant_file).read_bytes()
            await PlantImportService(session, tenant, c.timezone).run(body, "text/csv", dry_run=False)
            plant = PlantService(session, tenant)
            sites, _ = await plant.list("site", limit=10, offset=0)
            for site in sites:
                await plant.create(
                    "shift_calendar",
                    ShiftCalendarCreate(site_id=site.id, name=f"{site.name} shifts", shifts=list(SHIFTS)),
                )
    return partners, customers


async def _load_orgs(session: AsyncSession) -> tuple[dict[str, Partner], dict[str, Customer]]:
    system = system_principal(ALL_PERMISSIONS, "demo seed")
    partners, _ = await PartnerService(session, system).list(limit=500, offset=0, q=None)
    customers, _ = await CustomerService(session, system).list(limit=500, offset=0, q=None, partner_id=None)
    wanted = {c.slug for p in DEMO for c in p.customers}
    return (
        {p.slug: p for p in partners if p.slug in {d.slug for d in DEMO}},
        {c.slug: c for c in customers if c.slug in wanted},
    )


async def _seed_people(
    session: AsyncSession, settings: Settings, partners: dict[str, Partner], customers: dict[str, Customer]
) -> list[dict[str, str]]:
    """Local accounts, one per persona, sharing one password generated for this data directory."""
    system = system_principal(ALL_PERMISSIONS, "demo seed")
    password = "demo-" + secrets.token_urlsafe(9)
    logins = []
    for persona, role, email, where in PEOPLE:
        if where == "platform":
            node = OrgNode(OrgKind.PLATFORM)
        elif where in partners:
            node = OrgNode(OrgKind.PARTNER, partner_id=partners[where].id)
        else:
            tenant = await CustomerService(session, system).open_tenant(customers[where].id)
            node = OrgNode(OrgKind.CUSTOMER, partner_id=tenant.partner_id, tenant=tenant)
        name = email.split("@")[0].replace(".", " ").title()
        await UserAdmin(session, system, node, settings).create(
            UserCreate(email=email, display_name=name, password=password, grants=[GrantIn(role=role)]), site_ids=set()
        )
        logins.append({"persona": persona, "role": role, "email": email, "password": password, "org": where})
    return logins


# The demo customer's first workflow: a high or critical alarm is assessed; a critical one asks the
# supervisor whether to stop the machine (an approval), and a technician checks it either way.
DEMO_WORKFLOW = WorkflowCreate(
    key="machine-alarm-response",
    name="Machine alarm response",
    trigger_type="dev.andon.machine.alarm.v1",
    trigger_filter="event.severity in ['critical', 'high']",
    definition={
        "steps": [
            {"key": "assess", "kind": "set", "values": {"critical": "event.severity == 'critical'"}, "next": "route"},
            {"key": "route", "kind": "condition", "when": "steps.assess.critical", "then": "stop", "else": "check"},
            {
                "key": "stop",
                "kind": "approval",
                "title": "Stop {{ event.subject }} for inspection?",
                "instructions": "{{ event.data.message }}. Stopping costs output; running on risks the die.",
                "meaning": "Machine stop approved",
                "expires_seconds": 3600,
                "remind_seconds": 900,
                "next": "check",
                "on_reject": "check",
            },
            {
                "key": "check",
                "kind": "task",
                "title": "Check {{ event.subject }}: {{ event.data.message }}",
                "role": "technician",
                "due_seconds": 1800,
            },
        ]
    },
)


async def _seed_workflows(session: AsyncSession, customers: dict[str, Customer]) -> None:
    system = system_principal(ALL_PERMISSIONS, "demo seed")
    tenant = await CustomerService(session, system).open_tenant(customers["acme-castings"].id)

    async def nothing_to_send(messages: object) -> None:
        return None

    await WorkflowService(session, tenant, nothing_to_send).create(DEMO_WORKFLOW)


async def seed_demo(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> tuple[dict[str, Any], bool]:
    """Returns the credentials and whether anything was created. The billing part runs every time:
    it tops up the demo's usage to today (and adds nothing twice)."""
    creds, created = await _seed_orgs(sessionmaker, settings)
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system_principal(ALL_PERMISSIONS, "demo seed"))
        partners, customers = await _load_orgs(session)
    by_partner = {p.slug: [customers[c.slug] for c in p.customers if c.slug in customers] for p in DEMO}
    await seed_billing(sessionmaker, partners, by_partner)
    return creds, created


async def _seed_orgs(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> tuple[dict[str, Any], bool]:
    path = settings.data_dir / CREDENTIALS_FILE
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system_principal(ALL_PERMISSIONS, "demo seed"))
        if await _demo_exists(session):
            if path.exists():
                return dict(json.loads(path.read_text())), False
            partners, customers = await _load_orgs(session)
            created = False
        else:
            partners, customers = await _create_demo(session)
            created = True
        issued = await _issue_keys(session, partners, customers)
        if created:
            issued.logins = await _seed_people(session, settings, partners, customers)
            await _seed_workflows(session, customers)
        # With the credentials file gone, keys are reissued but passwords cannot be recovered (only
        # their hashes are stored): the banner says to use --reset for fresh logins.
        creds = issued.as_dict()
    path.write_text(json.dumps(creds, indent=2) + "\n")
    path.chmod(0o600)
    return creds, created
