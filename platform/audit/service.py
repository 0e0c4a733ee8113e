"""Recording and verifying the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.audit.chain import GENESIS, chain_for, entry_hash
from andon.platform.audit.models import AuditEntry
from andon.platform.audit.repository import AuditRepository
from andon.platform.db.types import utcnow
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal


async def record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    *,
    target_type: str,
    target_id: uuid.UUID | str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    tenant: TenantContext | None = None,
    partner_id: uuid.UUID | None = None,
) -> AuditEntry:
    """Append one entry in the same transaction as the change it describes.

    The entry lands on the tenant's chain when a tenant is given, else on the partner's, else on the
    platform chain. A delegated action (a partner acting inside a customer) says so in the actor.
    """
    tenant_id = tenant.tenant_id if tenant else None
    partner = tenant.partner_id if tenant else partner_id
    chain = chain_for(tenant_id=tenant_id, partner_id=partner)
    actor = principal.audit_actor()
    if tenant is not None and tenant.delegated:
        actor["acting_in_customer"] = str(tenant.tenant_id)
    repo = AuditRepository(session)
    head = await repo.lock_head(chain, tenant_id=tenant_id, partner_id=partner)
    at = utcnow()
    seq = head.seq + 1
    fields: dict[str, Any] = {
        "chain": chain,
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id) if target_id is not None else None,
        "before": before,
        "after": after,
        "prev_hash": head.hash,
    }
    entry = AuditEntry(**fields, tenant_id=tenant_id, partner_id=partner, hash=entry_hash(**fields))
    await repo.append(entry, head)
    return entry


def _own_chain(tenant: TenantContext | None, principal: Principal) -> str:
    partner = tenant.partner_id if tenant else principal.partner_id
    return chain_for(tenant_id=tenant.tenant_id if tenant else None, partner_id=partner)


async def list_chain(
    session: AsyncSession,
    *,
    tenant: TenantContext | None,
    principal: Principal,
    limit: int,
    offset: int,
    target_type: str | None = None,
    action: str | None = None,
) -> Sequence[AuditEntry]:
    """Newest first, from the caller's own chain (or the tenant's, once reach is checked); optionally
    only one kind of record, or actions containing ``action``."""
    return await AuditRepository(session).list_chain(
        _own_chain(tenant, principal), limit=limit, offset=offset, target_type=target_type, action=action
    )


async def target_types(session: AsyncSession, *, tenant: TenantContext | None, principal: Principal) -> list[str]:
    """The kinds of record the caller's chain speaks of (the choices of a filter)."""
    return await AuditRepository(session).target_types(_own_chain(tenant, principal))


@dataclass(frozen=True, slots=True)
class ChainProblem:
    chain: str
    entry_id: str | None
    seq: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    chains: int
    entries: int
    problems: Sequence[ChainProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(session: AsyncSession) -> VerifyReport:
    """Walk every chain: sequence without gaps, each entry's hash and link, and the head at the end."""
    repo = AuditRepository(session)
    heads = {h.chain: h for h in await repo.heads()}
    chains = sorted(set(heads) | set(await repo.chains_with_entries()))
    problems: list[ChainProblem] = []
    total = 0
    for chain in chains:
        expected_seq, prev = 1, GENESIS
        last_id: str | None = None
        async for e in repo.stream_chain(chain):
            total += 1
            entry_id, seq = str(e.id), e.seq
            if e.seq != expected_seq:
                problems.append(
                    ChainProblem(
                        chain, entry_id, seq, reason=f"entry {expected_seq} is missing (next is {e.seq}): deleted"
                    )
                )
                break
            if e.prev_hash != prev:
                problems.append(ChainProblem(chain, entry_id, seq, reason="link to the previous entry is broken"))
                break
            recomputed = entry_hash(
                chain=e.chain,
                seq=e.seq,
                at=e.at,
                actor=e.actor,
                action=e.action,
                target_type=e.target_type,
                target_id=e.target_id,
                before=e.before,
                after=e.after,
                prev_hash=e.prev_hash,
            )
            if recomputed != e.hash:
                problems.append(ChainProblem(chain, entry_id, seq, reason="content does not match its hash: edited"))
                break
            expected_seq, prev, last_id = e.seq + 1, e.hash, str(e.id)
        else:
            head = heads.get(chain)
            if head is None:
                problems.append(ChainProblem(chain, last_id, None, "chain head is missing"))
            elif head.seq != expected_seq - 1 or head.hash != prev:
                problems.append(
                    ChainProblem(
                        chain,
                        last_id,
                        head.seq,
                        f"head says {head.seq} entries but {expected_seq - 1} remain: tail deleted",
                    )
                )
    return VerifyReport(chains=len(chains), entries=total, problems=problems)
