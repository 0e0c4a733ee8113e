"""MQTT publish to the customer's broker (aiomqtt), for plant systems that listen on topics.

The broker's name is checked like any URL (public addresses only, unless allowed). Without TLS the
client connects to the address that was checked; with TLS it must connect by name (the certificate
is checked against it, and the MQTT client has no separate server name), so a DNS answer changed
between the check and the connect is the one gap left, and TLS is the setting for public brokers.
Topics are relative to the connection's prefix: a workflow cannot publish outside it.
"""

from __future__ import annotations

import ssl
from typing import Annotated, Any, Literal

import aiomqtt
import msgspec
from aiomqtt.client import ProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from andon.connectors.egress import EgressError, addresses_for
from andon.connectors.outbound.errors import ConnectorError, from_egress
from andon.connectors.outbound.types import Capability, ConnectorType, SecretField, Using
from andon.platform.engine.capabilities import FORBIDDEN, INVALID, UNAVAILABLE

Host = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.\-:\[\]]+$", max_length=253)]
Prefix = Annotated[str, msgspec.Meta(pattern=r"^[^+#\x00]*$", max_length=200)]
Topic = Annotated[str, msgspec.Meta(pattern=r"^[^+#\x00]+$", min_length=1, max_length=200)]


class MqttConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: Host
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8883
    tls: bool = True
    username: str | None = None
    # Every topic published is <prefix>/<topic>, e.g. "plant/line3".
    prefix: Prefix = ""


class Publish(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    topic: Topic
    payload: Any = None
    qos: Literal[0, 1] = 1
    retain: bool = False


def topic_of(config: MqttConfig, topic: str) -> str:
    if topic.startswith("/") or ".." in topic.split("/"):
        raise ConnectorError("inputs.topic: a topic below the connection's prefix", INVALID)
    return f"{config.prefix.strip('/')}/{topic}" if config.prefix.strip("/") else topic


async def _client(using: Using) -> aiomqtt.Client:
    config: MqttConfig = using.config
    try:
        addresses = await addresses_for(
            config.host, config.port, allow_private=using.limits.allow_private, resolve=using.egress.resolve
        )
    except EgressError as exc:
        raise from_egress(exc) from None
    return aiomqtt.Client(
        config.host if config.tls else addresses[0].split("%", 1)[0],
        config.port,
        username=config.username or None,
        password=using.secrets.get("password") or None,
        protocol=ProtocolVersion.V311,
        tls_context=ssl.create_default_context() if config.tls else None,
        timeout=using.limits.timeout_seconds,
    )


async def _publish(using: Using, inputs: Publish) -> Any:
    config: MqttConfig = using.config
    topic = topic_of(config, inputs.topic)
    payload = inputs.payload if isinstance(inputs.payload, str) else msgspec.json.encode(inputs.payload).decode()
    try:
        async with await _client(using) as client:
            await client.publish(topic, payload, qos=inputs.qos, retain=inputs.retain)
    except aiomqtt.MqttCodeError as exc:
        # CONNACK 4/5 (bad user name or password, not authorised) is the connection's fault, not the broker's.
        code = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
        kind = FORBIDDEN if code in (4, 5, 134, 135) else UNAVAILABLE
        raise ConnectorError(f"{config.host} refused: {exc}", kind) from None
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        raise ConnectorError(f"publishing to {config.host} failed: {type(exc).__name__}: {exc}", UNAVAILABLE) from None
    return {"topic": topic, "qos": inputs.qos}


async def _check(using: Using) -> list[tuple[str, bool, str]]:
    config: MqttConfig = using.config
    try:
        async with await _client(using):
            pass
    except ConnectorError as exc:
        return [("connect", False, str(exc))]
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        return [("connect", False, f"{type(exc).__name__}: {exc}")]
    return [("connect", True, f"{config.host}:{config.port} accepted the connection")]


MQTT = ConnectorType(
    key="mqtt",
    title="MQTT publish",
    description="Publishes JSON to topics on the customer's MQTT broker (TLS by default).",
    config=MqttConfig,
    secrets=(SecretField("password", "Broker password", lambda config: bool(getattr(config, "username", None))),),
    capabilities={"publish": Capability("publish", "Publish a message", Publish, _publish)},
    check=_check,
)
