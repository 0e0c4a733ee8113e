"""What the agent and Andon say to each other over the relay's WebSocket: JSON text frames, one
message each, told apart by ``type``.

Agent to Andon: ``event`` (one queued entry), and ``result`` or ``error`` for a call. Andon to agent:
``hello`` once the token is accepted, ``ack`` per event in the order the events came, ``call`` (a
connector call on a system inside the plant, see ``calls.py``), and ``refused`` (then the socket
closes) when the token or the connection is not good.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

# The WebSocket close codes Andon uses (4000-4999 are the application's own).
CLOSE_REFUSED = 4401
CLOSE_SUPERSEDED = 4409
# The largest frame either side takes: an event is at most this much JSON, with room for the envelope.
MAX_FRAME_BYTES = 2 * 1024 * 1024

Seq = Annotated[int, msgspec.Meta(ge=1)]
EntryId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class EventMessage(msgspec.Struct, tag="event", kw_only=True):
    """One entry of the agent's queue: ``seq`` orders it in the queue (and names it in the ack);
    ``id`` stays with the entry across reconnections, so a resent event is recognised as a repeat."""

    seq: Seq
    id: EntryId
    # As the local system posted it: a CloudEvent, or a payload for the connection's mapping.
    body: msgspec.Raw


class Hello(msgspec.Struct, tag="hello", kw_only=True):
    connection: str
    source: str


class Ack(msgspec.Struct, tag="ack", kw_only=True):
    """The event is dealt with for good: stored, found stored already, or refused (it would be refused
    again). The agent may forget it."""

    seq: int
    outcome: Literal["stored", "duplicate", "refused"]
    status: int | None = None
    detail: str | None = None


class RelayRefused(msgspec.Struct, tag="refused", kw_only=True):
    status: int
    detail: str


class CallMessage(msgspec.Struct, tag="call", kw_only=True):
    """An outbound connection's capability, to be run by the agent against a system in the plant. The
    connection's settings and opened secrets travel with it: the agent keeps none of its own."""

    id: str
    connection_id: str
    name: str
    connector_type: str
    config: Any
    secrets: dict[str, str]
    capability: str
    inputs: Any
    idempotency_key: str
    timeout_seconds: float


class CallResult(msgspec.Struct, tag="result", kw_only=True):
    id: str
    output: Any


class CallFailed(msgspec.Struct, tag="error", kw_only=True):
    id: str
    # The engine's error kinds (unavailable, failed, invalid, ...): retries follow them as for any call.
    kind: str
    message: str
    retry_after: float | None = None


ToAndon = EventMessage | CallResult | CallFailed
ToAgent = Hello | Ack | RelayRefused | CallMessage

_to_andon: msgspec.json.Decoder[ToAndon] = msgspec.json.Decoder(ToAndon)
_to_agent: msgspec.json.Decoder[ToAgent] = msgspec.json.Decoder(ToAgent)
_encoder = msgspec.json.Encoder()


def encode(message: ToAndon | ToAgent) -> str:
    return _encoder.encode(message).decode()


def decode_from_agent(frame: str | bytes) -> ToAndon:
    return _to_andon.decode(frame)


def decode_from_andon(frame: str | bytes) -> ToAgent:
    return _to_agent.decode(frame)
