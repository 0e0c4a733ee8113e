"""Every connector type Andon ships, by key."""

from __future__ import annotations

from andon.connectors.outbound.adapters.loader import ADAPTERS
from andon.connectors.outbound.chat import SLACK, TEAMS
from andon.connectors.outbound.email import EMAIL
from andon.connectors.outbound.graphql import GRAPHQL
from andon.connectors.outbound.mqtt import MQTT
from andon.connectors.outbound.rest import REST
from andon.connectors.outbound.sftp import SFTP
from andon.connectors.outbound.types import ConnectorType
from andon.connectors.outbound.webhooks import WEBHOOK

CONNECTOR_TYPES: dict[str, ConnectorType] = {
    t.key: t for t in (REST, GRAPHQL, WEBHOOK, SLACK, TEAMS, EMAIL, MQTT, SFTP, *ADAPTERS)
}
