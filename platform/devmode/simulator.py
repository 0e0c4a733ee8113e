"""Plant traffic for the demo: ``andon dev`` plays a small foundry's day, so the operations console,
incidents and workflow runs have something to show. Alarms are raised and later cleared on the demo
plant's machines, with the odd state change and quality deviation, through the same ingress as a
real sender (stored once, correlated, workflows started)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.events.envelope import CloudEvent, parse_object
from andon.platform.events.ingress import EventIngress
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from andon.tenants.plant.references import resolve_plant_refs

SOURCE = "urn:andon:demo:simulator"
CHANNEL = "simulator"
# (asset external id, alarm code, message, severity)
ALARMS = (
    ("ACME-DCM-01", "HYD-LOW", "Hydraulic pressure below 180 bar", "high"),
    ("ACME-FURN-01", "TEMP-HI", "Melt temperature above 720 °C", "critical"),
    ("ACME-DCM-02", "DIE-COOL", "Die cooling flow low", "medium"),
    ("ACME-ROB-02", "GRIP-FAIL", "Gripper did not close", "high"),
    ("ACME-CNC-01", "SPINDLE-VIB", "Spindle vibration over limit", "medium"),
)


@dataclass
class PlantTraffic:
    """One tick: raise an alarm, clear one that is up, or report something else that happened."""

    sessionmaker: async_sessionmaker[AsyncSession]
    customer_slug: str = "acme-castings"
    rng: random.Random = field(default_factory=random.Random)
    raised: set[int] = field(default_factory=set)
    customer_id: uuid.UUID | None = None

    async def tick(self) -> int:
        event = self._next()
        system = system_principal(ALL_PERMISSIONS, "demo simulator")
        async with self.sessionmaker() as session, session.begin():
            await apply_principal_scope(session, system)
            customers = CustomerService(session, system)
            if self.customer_id is None:
                found, _ = await customers.list(limit=500, offset=0, q=None, partner_id=None)
                self.customer_id = next((c.id for c in found if c.slug == self.customer_slug), None)
                if self.customer_id is None:
                    return 0
            tenant = await customers.open_tenant(self.customer_id)
            accepted = await EventIngress(session, tenant, resolve_plant_refs).accept([event], channel=CHANNEL)
        return len(accepted)

    def _next(self) -> CloudEvent:
        roll = self.rng.random()
        if self.raised and roll < 0.4:
            index = self.rng.choice(sorted(self.raised))
            self.raised.discard(index)
            return self._alarm(index, "cleared")
        if roll < 0.8:
            index = self.rng.randrange(len(ALARMS))
            self.raised.add(index)
            return self._alarm(index, "raised")
        asset = self.rng.choice(ALARMS)[0]
        if roll < 0.9:
            return _event(
                "dev.andon.machine.state_changed.v1",
                asset,
                {"state": self.rng.choice(["running", "idle", "setup"]), "reason": "shift pattern"},
            )
        return _event(
            "dev.andon.quality.deviation.v1",
            asset,
            {
                "characteristic": "Wall thickness",
                "measured": 2.31,
                "lower_limit": 2.4,
                "upper_limit": 2.8,
                "lot": "L-2291",
            },
            severity="high",
        )

    def _alarm(self, index: int, state: str) -> CloudEvent:
        asset, code, message, severity = ALARMS[index]
        return _event(
            "dev.andon.machine.alarm.v1",
            asset,
            {"code": code, "message": message, "state": state},
            severity=severity,
            dedupkey=f"{asset}:{code}",
        )


def _event(kind: str, asset: str, data: dict[str, object], **extensions: str) -> CloudEvent:
    return parse_object(
        {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "source": SOURCE,
            "type": kind,
            "subject": asset,
            "assetid": asset,
            "data": data,
            **extensions,
        }
    )
