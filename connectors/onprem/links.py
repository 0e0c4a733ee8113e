"""Which relay connections have an agent on the line in this process, the hand-over when an agent
comes back while its previous socket is still open here (a cut the server has not noticed yet), and
the calls waiting on each agent's answer.

One link per connection: the newer one takes over. The older link finishes the event it is storing,
if any, and stops before the newer one reads its first; the agent resends everything unacknowledged
from the oldest, so storing stays in queue order and the intake's dedup absorbs what the old link had
stored but not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from andon.connectors.onprem.protocol import CallFailed, CallMessage, CallResult, encode
from andon.platform.engine.capabilities import UNAVAILABLE

# How long a superseded link may take to finish its event before the newer link goes ahead anyway
# (a database that hangs; the resent event is then a repeat at worst).
HANDOVER_SECONDS = 30.0
# Beyond the call's own timeout, for the agent's answer to travel back.
ANSWER_SLACK_SECONDS = 5.0
NOT_CONNECTED = "the customer's on-premise relay is not connected"

Send = Callable[[str], Awaitable[None]]


class AgentLink:
    def __init__(self, connection_id: uuid.UUID, tenant_id: uuid.UUID, send: Send) -> None:
        self.connection_id = connection_id
        self.tenant_id = tenant_id
        self.send = send
        self.stopping = asyncio.Event()
        self.finished = asyncio.Event()
        self.pending: dict[str, asyncio.Future[CallResult | CallFailed]] = {}

    async def supersede(self) -> None:
        self.stopping.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HANDOVER_SECONDS):
                await self.finished.wait()

    async def call(self, message: CallMessage) -> CallResult | CallFailed:
        answer: asyncio.Future[CallResult | CallFailed] = asyncio.get_running_loop().create_future()
        self.pending[message.id] = answer
        try:
            await self.send(encode(message))
            async with asyncio.timeout(message.timeout_seconds + ANSWER_SLACK_SECONDS):
                return await answer
        except TimeoutError:
            return CallFailed(
                id=message.id,
                kind=UNAVAILABLE,
                message=f"the relay agent did not answer within {message.timeout_seconds:.0f} s",
            )
        except Exception as exc:  # the socket broke while sending: the call may be sent again
            return CallFailed(id=message.id, kind=UNAVAILABLE, message=f"the relay link broke: {type(exc).__name__}")
        finally:
            self.pending.pop(message.id, None)

    def answered(self, reply: CallResult | CallFailed) -> None:
        waiting = self.pending.get(reply.id)
        if waiting is not None and not waiting.done():
            waiting.set_result(reply)

    def close(self) -> None:
        self.finished.set()
        for call_id, waiting in self.pending.items():
            if not waiting.done():
                # The agent may have run it: the engine retries with the same idempotency key.
                waiting.set_result(
                    CallFailed(id=call_id, kind=UNAVAILABLE, message="the relay link broke before the agent answered")
                )


class AgentLinks:
    def __init__(self) -> None:
        self._links: dict[uuid.UUID, AgentLink] = {}
        # The loop the links live on, for calls made from another loop (in-process worker threads).
        self.loop: asyncio.AbstractEventLoop | None = None

    async def open(self, connection_id: uuid.UUID, tenant_id: uuid.UUID, send: Send) -> AgentLink:
        self.loop = asyncio.get_running_loop()
        link = AgentLink(connection_id, tenant_id, send)
        previous = self._links.get(connection_id)
        self._links[connection_id] = link
        if previous is not None:
            await previous.supersede()
        return link

    def close(self, link: AgentLink) -> None:
        link.close()
        if self._links.get(link.connection_id) is link:
            del self._links[link.connection_id]

    def connected(self, connection_id: uuid.UUID) -> bool:
        return connection_id in self._links

    def of_tenant(self, tenant_id: uuid.UUID) -> AgentLink | None:
        """The customer's most recently connected agent, if any."""
        found = [link for link in self._links.values() if link.tenant_id == tenant_id and not link.stopping.is_set()]
        return found[-1] if found else None

    async def call(self, tenant_id: uuid.UUID, message: CallMessage) -> CallResult | CallFailed:
        link = self.of_tenant(tenant_id)
        if link is None:
            return CallFailed(id=message.id, kind=UNAVAILABLE, message=NOT_CONNECTED)
        return await link.call(message)
