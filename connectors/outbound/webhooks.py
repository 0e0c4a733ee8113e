"""Outbound webhooks signed the Standard Webhooks way: the receiver checks the signature with the
secret it was given (``whsec_...``), and dedupes by ``webhook-id``, which is the step's idempotency
key, so a repeat after a crash is recognised as one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from standardwebhooks.webhooks import Webhook

from andon.connectors.egress import EgressError
from andon.connectors.outbound.errors import from_egress, from_status
from andon.connectors.outbound.types import Capability, ConnectorType, SecretField, Using

HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", max_length=2000)]
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class WebhookConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: HttpUrl


class WebhookSend(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: EventType
    data: Any = None


def signed(secret: str, message_id: str, payload: bytes, now: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, now, payload.decode())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }


async def _send(using: Using, inputs: WebhookSend) -> Any:
    now = datetime.now(UTC)
    payload = msgspec.json.encode({"type": inputs.type, "timestamp": now.isoformat(), "data": inputs.data})
    headers = signed(using.secrets.get("signing_secret", ""), using.idempotency_key, payload, now)
    try:
        response = await using.egress.send("POST", using.config.url, using.limits, headers=headers, content=payload)
    except EgressError as exc:
        raise from_egress(exc) from None
    failure = from_status(using.name, response)
    if failure is not None:
        raise failure
    return {"status": response.status, "webhook_id": using.idempotency_key}


async def _check(using: Using) -> list[tuple[str, bool, str]]:
    try:
        await _send(using, WebhookSend(type="andon.ping", data={"check": True}))
    except Exception as exc:  # the check reports; it never raises
        return [("deliver a signed andon.ping", False, str(exc))]
    return [("deliver a signed andon.ping", True, "the receiver answered 2xx")]


WEBHOOK = ConnectorType(
    key="webhook",
    title="Signed webhook",
    description="POSTs JSON to a URL, signed with Standard Webhooks (webhook-id, -timestamp, -signature).",
    config=WebhookConfig,
    secrets=(SecretField("signing_secret", "Signing secret (whsec_...)"),),
    capabilities={"send": Capability("send", "Send an event", WebhookSend, _send)},
    check=_check,
)
