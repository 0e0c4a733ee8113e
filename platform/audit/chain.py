"""How an entry's hash is computed; shared by the writer and ``andon audit verify``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    *,
    chain: str,
    seq: int,
    at: datetime,
    actor: dict[str, Any],
    action: str,
    target_type: str,
    target_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    prev_hash: str,
) -> str:
    payload = {
        "chain": chain,
        "seq": seq,
        "at": canonical_time(at),
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def chain_for(*, tenant_id: object | None, partner_id: object | None) -> str:
    if tenant_id is not None:
        return f"tenant:{tenant_id}"
    if partner_id is not None:
        return f"partner:{partner_id}"
    return "platform"
