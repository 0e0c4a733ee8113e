"""Slack and Microsoft Teams incoming webhooks: a message into a channel.

The webhook URL is the credential (anyone holding it can post), so it is a secret, not a setting.
Neither API deduplicates: a repeat after a crash between the post and its record can show twice,
which the engine keeps rare (the effect is recorded right after the call).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import httpx
import msgspec

from andon.connectors.egress import EgressError, addresses_for
from andon.connectors.outbound.errors import ConnectorError, from_egress, from_status
from andon.connectors.outbound.types import Capability, ConnectorType, SecretField, Using
from andon.platform.engine.capabilities import INVALID

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=3000)]
Severity = Literal["critical", "major", "minor", "warning", "info"]
_COLOURS = {"critical": "attention", "major": "attention", "minor": "warning", "warning": "warning", "info": "good"}


class ChatConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Shown in the portal beside the connection ("#line-3-maintenance").
    channel_label: Annotated[str, msgspec.Meta(max_length=200)] = ""


class Notify(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    text: Text
    title: Annotated[str, msgspec.Meta(max_length=300)] | None = None
    severity: Severity | None = None
    # A link back to the incident or run in the portal.
    link: Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", max_length=2000)] | None = None


def _webhook(using: Using) -> str:
    url = using.secrets.get("webhook_url", "")
    if not url.startswith("https://") and not using.limits.allow_private:
        raise ConnectorError("the webhook URL must be https", INVALID)
    return url


async def _post(using: Using, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        response = await using.egress.send(
            "POST",
            _webhook(using),
            using.limits,
            headers={"Content-Type": "application/json"},
            content=msgspec.json.encode(payload),
        )
    except EgressError as exc:
        raise from_egress(exc) from None
    failure = from_status(using.name, response)
    if failure is not None:
        raise failure
    return {"status": response.status, "delivered": True}


def slack_payload(inputs: Notify) -> dict[str, Any]:
    heading = f"*{inputs.title}*\n" if inputs.title else ""
    marker = f"[{inputs.severity.upper()}] " if inputs.severity else ""
    text = f"{marker}{heading}{inputs.text}"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if inputs.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open in Andon"}, "url": inputs.link}
                ],
            }
        )
    return {"text": text, "blocks": blocks}


def teams_payload(inputs: Notify) -> dict[str, Any]:
    body: list[dict[str, Any]] = []
    if inputs.title:
        body.append(
            {
                "type": "TextBlock",
                "text": inputs.title,
                "weight": "bolder",
                "size": "medium",
                "color": _COLOURS.get(inputs.severity or "", "default"),
            }
        )
    body.append({"type": "TextBlock", "text": inputs.text, "wrap": True})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if inputs.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in Andon", "url": inputs.link}]
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


async def _slack_notify(using: Using, inputs: Notify) -> Any:
    return await _post(using, slack_payload(inputs))


async def _teams_notify(using: Using, inputs: Notify) -> Any:
    return await _post(using, teams_payload(inputs))


async def _check(using: Using) -> list[tuple[str, bool, str]]:
    # Posting is the only thing an incoming webhook does; a check must not spam the channel, so it
    # checks the URL's form and that the host resolves to an address Andon may call.
    try:
        url = _webhook(using)
    except ConnectorError as exc:
        return [("webhook URL", False, str(exc))]
    host = httpx.URL(url).host
    try:
        await addresses_for(host, 443, allow_private=using.limits.allow_private, resolve=using.egress.resolve)
    except EgressError as exc:
        return [("webhook URL", True, "https"), ("resolve the host", False, str(exc))]
    return [("webhook URL", True, "https"), ("resolve the host", True, f"{host} resolves to a public address")]


_WEBHOOK_URL = SecretField("webhook_url", "Incoming webhook URL")

SLACK = ConnectorType(
    key="slack",
    title="Slack",
    description="Posts to a Slack channel through an incoming webhook.",
    config=ChatConfig,
    secrets=(_WEBHOOK_URL,),
    capabilities={"notify": Capability("notify", "Post a message", Notify, _slack_notify)},
    check=_check,
)

TEAMS = ConnectorType(
    key="teams",
    title="Microsoft Teams",
    description="Posts an Adaptive Card to a Teams channel through an incoming webhook (Workflows).",
    config=ChatConfig,
    secrets=(_WEBHOOK_URL,),
    capabilities={"notify": Capability("notify", "Post a message", Notify, _teams_notify)},
    check=_check,
)
