"""The agent's link to Andon: hold the WebSocket, send the queue in order, forget what is acknowledged,
and come back after any break with backoff and jitter, starting again from the oldest entry.

Up to ``window`` events are sent ahead of their acknowledgements. Andon stores a link's events one
after another, so the window does not change the order; it only spares the round trip per event
(on a plant's uplink, the round trip is most of the time an event takes).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from andon.connectors.egress import Egress
from andon.connectors.onprem.agent_calls import run_call
from andon.connectors.onprem.disk_queue import DiskQueue
from andon.connectors.onprem.protocol import (
    MAX_FRAME_BYTES,
    Ack,
    CallMessage,
    EventMessage,
    Hello,
    RelayRefused,
    decode_from_andon,
    encode,
)
from andon.platform.workers.background import BackgroundLoop

log = structlog.get_logger("andon.relay.agent")


@dataclass(frozen=True, slots=True)
class LinkSettings:
    url: str
    token: str
    window: int = 8
    min_backoff: float = 0.5
    max_backoff: float = 30.0
    # A silent link (a cut cable answers nothing) is given up after about ping_interval + ping_timeout.
    ping_interval: float = 5.0
    ping_timeout: float = 10.0
    open_timeout: float = 10.0


class Refused(Exception):
    """Andon would not take this agent (a wrong or rotated token, a disabled connection)."""


class Forwarder(BackgroundLoop):
    task_name = "relay-forwarder"

    def __init__(self, queue: DiskQueue, settings: LinkSettings) -> None:
        self.queue = queue
        self.settings = settings
        # The plant's systems, reached for Andon's calls (one client for the agent's life).
        self.egress = Egress()
        self.calls = 0
        # Set when there may be something to send: a new entry, or room in the window.
        self.wake = asyncio.Event()
        self.connected = False
        self.connected_since: float | None = None
        self.last_error: str | None = None
        self.refused_events = 0
        self.last_refusal: str | None = None

    def backoff(self, attempt: int) -> float:
        """Full jitter: plants that lost the link together do not all come back in the same instant."""
        ceiling = min(self.settings.max_backoff, self.settings.min_backoff * 2**attempt)
        return random.uniform(self.settings.min_backoff, max(ceiling, self.settings.min_backoff))  # noqa: S311 (jitter, not secrecy)

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                async with connect(
                    self.settings.url,
                    additional_headers={"Authorization": f"Bearer {self.settings.token}"},
                    open_timeout=self.settings.open_timeout,
                    ping_interval=self.settings.ping_interval,
                    ping_timeout=self.settings.ping_timeout,
                    close_timeout=5,
                    max_size=MAX_FRAME_BYTES,
                ) as socket:
                    await self._greeted(socket)
                    attempt = 0
                    await self._stream(socket)
            except asyncio.CancelledError:
                raise
            except Refused as exc:
                self.last_error = f"refused by Andon: {exc}"
                log.error("relay_refused", reason=str(exc))
                # Nothing changes until someone fixes the token or the connection: no hurry.
                attempt = max(attempt, 16)
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI, msgspec.DecodeError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("relay_link_down", error=self.last_error)
            finally:
                self.connected, self.connected_since = False, None
            await asyncio.sleep(self.backoff(attempt))
            attempt += 1

    async def _greeted(self, socket: ClientConnection) -> None:
        message = decode_from_andon(await socket.recv())
        if isinstance(message, RelayRefused):
            raise Refused(f"{message.status}: {message.detail}")
        if not isinstance(message, Hello):
            raise Refused(f"Andon answered {type(message).__name__} instead of hello")
        self.connected, self.connected_since, self.last_error = True, time.time(), None
        log.info("relay_link_up", connection=message.connection, source=message.source)

    async def _stream(self, socket: ClientConnection) -> None:
        # Sequence numbers of events sent on this link and not yet acknowledged, oldest first.
        unacked: list[int] = []
        halves = {
            asyncio.create_task(self._send(socket, unacked)),
            asyncio.create_task(self._receive(socket, unacked)),
        }
        try:
            done, _ = await asyncio.wait(halves, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for half in halves:
                half.cancel()
            await asyncio.gather(*halves, return_exceptions=True)
        for half in done:
            half.result()

    async def _send(self, socket: ClientConnection, unacked: list[int]) -> None:
        # Every link starts again from the oldest entry: whatever the last one sent may not have arrived.
        last = 0
        while True:
            self.wake.clear()
            room = self.settings.window - len(unacked)
            entries = await asyncio.to_thread(self.queue.after, last, room) if room > 0 else []
            if not entries:
                await self.wake.wait()
                continue
            for entry in entries:
                await socket.send(encode(EventMessage(seq=entry.seq, id=entry.id, body=msgspec.Raw(entry.body))))
                unacked.append(entry.seq)
                last = entry.seq

    async def _receive(self, socket: ClientConnection, unacked: list[int]) -> None:
        running: set[asyncio.Task[None]] = set()
        try:
            await self._answer(socket, unacked, running)
        finally:
            # A call cut off with the link is failed on Andon's side, and retried with its idempotency key.
            for task in running:
                task.cancel()

    async def _call(self, socket: ClientConnection, message: CallMessage) -> None:
        self.calls += 1
        reply = await run_call(message, self.egress)
        await socket.send(encode(reply))

    async def _answer(self, socket: ClientConnection, unacked: list[int], running: set[asyncio.Task[None]]) -> None:
        async for frame in socket:
            message = decode_from_andon(frame)
            if isinstance(message, RelayRefused):
                raise Refused(f"{message.status}: {message.detail}")
            if isinstance(message, CallMessage):
                # Calls run beside the event stream: a slow plant system does not hold events up.
                task = asyncio.create_task(self._call(socket, message))
                running.add(task)
                task.add_done_callback(running.discard)
                continue
            if not isinstance(message, Ack):
                continue
            if message.outcome == "refused":
                self.refused_events += 1
                self.last_refusal = f"{message.status}: {message.detail}"
                # Andon logged it on the connection too; sending it again would get the same answer.
                log.warning("relay_event_refused", seq=message.seq, status=message.status, detail=message.detail)
            if message.seq not in unacked:
                raise ConnectionError(f"Andon acknowledged {message.seq}, which this link did not send")
            await asyncio.to_thread(self.queue.remove_through, message.seq)
            del unacked[: unacked.index(message.seq) + 1]
            self.wake.set()
        raise ConnectionError("Andon closed the link")
