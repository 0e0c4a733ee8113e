"""The agent's store-and-forward queue: a SQLite file (WAL), bounded in entries and bytes.

An entry is on disk, fsync'd, before the local system is told it was accepted; it leaves only when
Andon has acknowledged it. When the bounds are reached, new entries are refused with ``QueueFull``
(the local system is told to retry): nothing already accepted is ever dropped to make room.

Calls come from the agent's event loop through ``asyncio.to_thread``; one lock serialises them on
the one connection.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from andon.platform.http.errors import AndonError

FILE_NAME = "relay-queue.sqlite3"


class QueueFull(AndonError):
    status_code = 507
    title = "Insufficient storage"
    type_slug = "relay-queue-full"
    # Long enough for a short outage to end; the local system keeps the event meanwhile.
    headers = {"Retry-After": "30"}


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    id: str
    body: bytes
    received_at: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    entries: int
    bytes: int
    oldest_received_at: float | None


class DiskQueue:
    def __init__(self, directory: Path, *, max_entries: int, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE_NAME
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._sql("PRAGMA journal_mode=WAL")
        self._sql(
            "CREATE TABLE IF NOT EXISTS entries ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " id TEXT NOT NULL,"
            " body BLOB NOT NULL,"
            " received_at REAL NOT NULL)"
        )
        # Kept in memory, so the bounds cost no query per event; the file says what it holds at start.
        count, size = self._sql("SELECT count(*), coalesce(sum(length(body)), 0) FROM entries").fetchone()
        self._entries, self._bytes = int(count), int(size)

    def _sql(self, statement: str, parameters: tuple[object, ...] = ()) -> sqlite3.Cursor:
        return self._db.execute(statement, parameters)  # andon: unscoped-ok (the agent's own queue file)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, bodies: Sequence[bytes]) -> list[int]:
        """Appends the bodies in order, all or none, durably (fsync'd) when this returns."""
        size = sum(len(b) for b in bodies)
        with self._lock:
            if self._entries + len(bodies) > self.max_entries or self._bytes + size > self.max_bytes:
                raise QueueFull(
                    f"the relay's queue is full ({self._entries} events, {self._bytes} bytes; at most "
                    f"{self.max_entries} events, {self.max_bytes} bytes) because Andon has not been reachable: "
                    "nothing was accepted from this request, send it again later"
                )
            now = time.time()
            # FULL: the commit syncs the WAL to disk before the local system is answered.
            self._sql("PRAGMA synchronous=FULL")
            self._sql("BEGIN IMMEDIATE")
            try:
                seqs = [
                    int(
                        self._sql(
                            "INSERT INTO entries (id, body, received_at) VALUES (?, ?, ?) RETURNING seq",
                            (str(uuid.uuid4()), body, now),
                        ).fetchone()[0]
                    )
                    for body in bodies
                ]
                self._sql("COMMIT")
            except BaseException:
                self._sql("ROLLBACK")
                raise
            self._entries += len(bodies)
            self._bytes += size
            return seqs

    def after(self, seq: int, limit: int) -> list[Entry]:
        """The oldest entries after ``seq``, in queue order."""
        with self._lock:
            rows = self._sql(
                "SELECT seq, id, body, received_at FROM entries WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        return [Entry(seq=int(r[0]), id=str(r[1]), body=bytes(r[2]), received_at=float(r[3])) for r in rows]

    def remove_through(self, seq: int) -> None:
        """Forgets every entry up to ``seq``: Andon handles a link's events in order, so an
        acknowledgement covers all before it on that link (and the link began with the oldest)."""
        with self._lock:
            # Not synced: a removal lost in a power cut means a resend, which Andon answers as a repeat.
            self._sql("PRAGMA synchronous=NORMAL")
            self._sql("BEGIN IMMEDIATE")
            try:
                count, size = self._sql(
                    "SELECT count(*), coalesce(sum(length(body)), 0) FROM entries WHERE seq <= ?", (seq,)
                ).fetchone()
                self._sql("DELETE FROM entries WHERE seq <= ?", (seq,))
                self._sql("COMMIT")
            except BaseException:
                self._sql("ROLLBACK")
                raise
            self._entries -= int(count)
            self._bytes -= int(size)

    def stats(self) -> QueueStats:
        with self._lock:
            oldest = self._sql("SELECT received_at FROM entries ORDER BY seq LIMIT 1").fetchone()
            return QueueStats(
                entries=self._entries, bytes=self._bytes, oldest_received_at=float(oldest[0]) if oldest else None
            )
