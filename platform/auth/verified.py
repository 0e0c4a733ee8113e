"""API keys verified recently by this process, so a machine sending many requests a second costs
one key lookup every few seconds instead of one per request.

An entry is keyed by the SHA-256 of the presented key (the plaintext is never kept) and lives for
``security.api_key_cache_seconds``: a key revoked, expired or suspended in another process stops
working here within that time. Changes made in this process (revoking a key, suspending or moving
an organisation, through any session) forget every entry at once.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event

from andon.platform.tenancy.principal import Principal


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    principal: Principal
    prefix: str
    expires_at: datetime | None
    verified_at: float


class VerifiedKeys:
    # More keys than this in one process is unusual; past it the cache starts over (never grows unbounded).
    MAX_ENTRIES = 10_000

    def __init__(self, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.clock = clock
        self._entries: dict[str, VerifiedKey] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def get(self, digest: str, now: datetime) -> VerifiedKey | None:
        """The entry, while it is younger than the TTL and the key has not expired."""
        found = self._entries.get(digest)
        if found is None:
            return None
        if self.clock() - found.verified_at >= self.ttl or (found.expires_at is not None and found.expires_at <= now):
            self._entries.pop(digest, None)
            return None
        return found

    def put(self, digest: str, principal: Principal, prefix: str, expires_at: datetime | None) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = VerifiedKey(principal, prefix, expires_at, self.clock())

    def clear(self) -> None:
        self._entries.clear()

    @asynccontextmanager
    async def refreshing(self, digest: str) -> AsyncIterator[None]:
        """One lookup per key at a time: when an entry ages out under load, the requests that find it
        gone wait for the first one's lookup instead of all asking the database."""
        lock = self._locks.setdefault(digest, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(digest) is lock:
                del self._locks[digest]


_CACHES: weakref.WeakSet[VerifiedKeys] = weakref.WeakSet()


def _forget_all(*_: Any) -> None:
    for cache in list(_CACHES):
        cache.clear()


def forget_on_change(cache: VerifiedKeys, *models: type[Any]) -> None:
    """Clear ``cache`` whenever a row of ``models`` is updated or deleted through the ORM in this
    process (the listeners are registered once, however many apps are built)."""
    _CACHES.add(cache)
    for model in models:
        for name in ("after_update", "after_delete"):
            if not event.contains(model, name, _forget_all):
                event.listen(model, name, _forget_all)
