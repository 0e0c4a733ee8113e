"""MQTT ingress: one subscription per enabled mqtt connection, of every customer, on the broker edge
gateways publish to (``settings.mqtt``; an empty ``mqtt.url`` turns the ingress off).

How a message becomes events (topics, payloads, ids) is in ``mqtt_payloads.py``; storing them, once,
with their outbox rows, and logging the delivery on the connection is the intake's, as for every
channel.

Nothing lost:
- Each subscription has its own client with a stable id (``<client_prefix>-<connection id>``) and a
  persistent session (``clean_session`` off, MQTT 3.1.1), so the broker keeps what is published
  while Andon is down or reconnecting (QoS 1) and hands it over on the next connect.
- A QoS 1 message is acknowledged only after the intake has committed, or has refused and logged it.
  aiomqtt 2.5 has no manual acknowledgement of its own (empicano/aiomqtt#345), so the paho client
  underneath is switched to it (``manual_ack_set``, ``ack``), as that issue suggests. A crash or a
  failure before the acknowledgement (the database away) leaves the message unacknowledged: the
  subscription disconnects, backs off and reconnects, the broker sends the message again, and its
  id absorbs a repeat if it had been stored after all.
- A message the intake refuses (not JSON, invalid for its event type, too large) is logged on the
  connection with its reason and acknowledged: sending it again would not change the answer. The
  subscription carries on with the next.

The set of connections is read again every ``mqtt.reload_seconds``: a new connection is subscribed;
a disabled or deleted one is unsubscribed and its broker session discarded (nothing queues for it);
a changed topic or QoS re-subscribes (dropping the old filter); a changed mapping or event type
applies to the next message. The broker being away is logged once per outage, never raised: the
app runs on without MQTT. One process runs the ingress (the web process while workers run in it):
two holding the same client ids would take the sessions from each other in turn.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiomqtt
import structlog
from aiomqtt import Message, MqttError, ProtocolVersion
from sqlalchemy.exc import DBAPIError

from andon.connectors.ingress.mqtt_payloads import delivery_for, namespace, subscription_filter
from andon.connectors.sources.intake import ConnectionIntake
from andon.connectors.sources.kinds import MqttConfig, parse_config
from andon.connectors.sources.repository import ConnectionFound, ConnectionLookup
from andon.platform.config.settings import MqttSettings
from andon.platform.db.errors import is_data_exception
from andon.platform.http.errors import AndonError, TooManyRequestsError
from andon.platform.observability.metrics import count_delivery, count_events
from andon.platform.workers.background import BackgroundLoop

log = structlog.get_logger("andon.mqtt")
CHANNEL = "mqtt"
KIND = "mqtt"
# Seconds a broker operation (connect, subscribe, the session discard) may take.
BROKER_TIMEOUT = 10.0

# Charges a customer one event, or raises TooManyRequestsError (the app's rate limiter).
Limit = Callable[[uuid.UUID], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Broker:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"mqtt.url: {url!r} is not mqtt://host[:port] or mqtts://host[:port]")
        tls = parts.scheme == "mqtts"
        return cls(host=parts.hostname, port=parts.port or (8883 if tls else 1883), tls=tls)


class Subscription(BackgroundLoop):
    """One connection's subscription: connect, subscribe, hand each message to the ingress, and
    reconnect with backoff whenever the broker goes away or a message could not be handled."""

    def __init__(self, ingress: MqttIngress, found: ConnectionFound, config: MqttConfig) -> None:
        self.ingress = ingress
        # Replaced in place when the connection's mapping or event type changes.
        self.found = found
        self.config = config
        self.prefix = namespace(ingress.settings.topic_root, found.tenant_id)
        self.filter = subscription_filter(ingress.settings.topic_root, found.tenant_id, config.topic)
        self.client_id = ingress.client_id(found.id)
        # Filters of the connection's earlier settings, dropped from the broker's session on connect.
        self.stale: set[str] = set()
        self.subscribed = asyncio.Event()
        self.task_name = f"mqtt-{found.id}"

    async def stop(self) -> None:
        await super().stop()
        self.subscribed.clear()

    def _context(self) -> dict[str, str]:
        return {"connection_id": str(self.found.id), "tenant_id": str(self.found.tenant_id)}

    async def run(self) -> None:
        settings = self.ingress.settings
        delay = settings.reconnect_min_seconds
        failing = False
        while True:
            try:
                async with self.ingress.client(self.client_id, clean_session=False) as client:
                    for stale in sorted(self.stale):
                        await client.unsubscribe(stale)
                    self.stale.clear()
                    await client.subscribe(self.filter, qos=self.config.qos)
                    self.subscribed.set()
                    log.info("mqtt_subscribed", topic=self.filter, qos=self.config.qos, **self._context())
                    delay, failing = settings.reconnect_min_seconds, False
                    async for message in client.messages:
                        await self.ingress.handle(self, client, message)
            except asyncio.CancelledError:
                raise
            except MqttError as exc:
                # Said once per outage: a broker that stays away for hours does not fill the log.
                level = log.debug if failing else log.warning
                level("mqtt_broker_unavailable", error=str(exc), retry_in_s=delay, **self._context())
                failing = True
            except Exception as exc:  # the database away, or a fault: the unacknowledged message comes again
                log.warning(
                    "mqtt_message_failed", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay, **self._context()
                )
            self.subscribed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.reconnect_max_seconds)


class MqttIngress(BackgroundLoop):
    task_name = "mqtt-ingress"

    """Keeps one subscription per enabled mqtt connection, and turns their messages into deliveries."""

    def __init__(
        self,
        intake: ConnectionIntake,
        settings: MqttSettings,
        *,
        on_events: Callable[[], None] | None = None,
        limit: Limit | None = None,
    ) -> None:
        self.intake = intake
        self.settings = settings
        self.broker = Broker.from_url(settings.url)
        # Called after a message stored new events (the outbox relay's wake).
        self.on_events = on_events
        self.limit = limit
        self.subscriptions: dict[uuid.UUID, Subscription] = {}

    def client_id(self, connection_id: uuid.UUID) -> str:
        return f"{self.settings.client_prefix}-{connection_id}"

    def client(self, identifier: str, *, clean_session: bool) -> aiomqtt.Client:
        password = self.settings.password.get_secret_value()
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.settings.username or None,
            password=password or None,
            identifier=identifier,
            protocol=ProtocolVersion.V311,
            clean_session=clean_session,
            tls_context=ssl.create_default_context() if self.broker.tls else None,
            timeout=BROKER_TIMEOUT,
        )
        # Acknowledge only once the message is stored or refused (see the module's docstring).
        client._client.manual_ack_set(True)
        return client

    def is_subscribed(self, connection_id: uuid.UUID) -> bool:
        subscription = self.subscriptions.get(connection_id)
        return subscription is not None and subscription.subscribed.is_set()

    # The supervisor.

    async def stop(self) -> None:
        """Stop every subscription; their broker sessions stay, with what arrives until the next start."""
        await super().stop()
        subscriptions, self.subscriptions = list(self.subscriptions.values()), {}
        await asyncio.gather(*(s.stop() for s in subscriptions))

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: keep the subscriptions as they are, read again later
                log.warning("mqtt_reload_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.settings.reload_seconds)

    async def _wanted(self) -> dict[uuid.UUID, tuple[ConnectionFound, MqttConfig]]:
        async with self.intake.sessionmaker() as session, session.begin():
            found = await ConnectionLookup(session).enabled_of_kind(KIND)
        wanted = {}
        for connection in found:
            try:
                config = parse_config(KIND, connection.config)
            except AndonError as exc:
                log.error("mqtt_connection_unusable", connection_id=str(connection.id), error=exc.detail)
                continue
            assert isinstance(config, MqttConfig)
            wanted[connection.id] = (connection, config)
        return wanted

    async def refresh(self) -> None:
        """Bring the subscriptions in line with the enabled mqtt connections."""
        wanted = await self._wanted()
        for connection_id in set(self.subscriptions) - set(wanted):
            await self.subscriptions.pop(connection_id).stop()
            await self.forget(connection_id)
        for connection_id, (found, config) in wanted.items():
            current = self.subscriptions.get(connection_id)
            if current is not None and (current.config.topic, current.config.qos) == (config.topic, config.qos):
                current.found, current.config = found, config
                continue
            subscription = Subscription(self, found, config)
            if current is not None:
                await current.stop()
                if current.filter != subscription.filter:
                    subscription.stale = {current.filter}
            self.subscriptions[connection_id] = subscription
            subscription.start()

    async def forget(self, connection_id: uuid.UUID) -> None:
        """Discard a connection's broker session (and what queued in it): a clean connect under its
        client id. Best effort: with the broker away, the session stays until the broker expires it."""
        try:
            async with asyncio.timeout(BROKER_TIMEOUT):
                async with self.client(self.client_id(connection_id), clean_session=True):
                    pass
        except (MqttError, TimeoutError) as exc:
            log.info("mqtt_session_kept", connection_id=str(connection_id), error=str(exc) or type(exc).__name__)

    # One message.

    async def handle(self, subscription: Subscription, client: aiomqtt.Client, message: Message) -> None:
        """Store (or refuse and log) one message, then acknowledge it. Raises, unacknowledged, when it
        could be neither (the database away): the subscription reconnects and the broker sends it again."""
        found = subscription.found
        topic = message.topic.value
        if message.topic.matches(subscription.filter):
            payload = message.payload
            body = payload if isinstance(payload, bytes) else str(payload or "").encode()
            delivery, check = delivery_for(
                subscription.config,
                topic,
                topic.removeprefix(subscription.prefix),
                body,
                max_bytes=self.settings.max_payload_bytes,
            )
            await self._charge(found.tenant_id)
            try:
                receipt = await self.intake.receive(found, delivery, channel=CHANNEL, check=check)
            except AndonError as refusal:
                count_delivery(CHANNEL, refusal.status_code)
                log.info(
                    "mqtt_message_refused",
                    topic=topic,
                    status=refusal.status_code,
                    reason=refusal.detail,
                    connection_id=str(found.id),
                    tenant_id=str(found.tenant_id),
                )
            except DBAPIError as exc:
                if not is_data_exception(exc):
                    raise
                count_delivery(CHANNEL, 422)
                log.warning(
                    "mqtt_message_unstorable",
                    topic=topic,
                    error=str(exc.orig),
                    connection_id=str(found.id),
                    tenant_id=str(found.tenant_id),
                )
            else:
                count_delivery(CHANNEL, "accepted" if receipt.new else "duplicate")
                count_events(CHANNEL, receipt.new, receipt.duplicates)
                if receipt.new and self.on_events is not None:
                    self.on_events()
        else:
            # Left in the broker's session by an earlier filter of this connection: not for it any more.
            log.debug("mqtt_message_ignored", topic=topic, connection_id=str(found.id))
        client._client.ack(message.mid, message.qos)

    async def _charge(self, tenant_id: uuid.UUID) -> None:
        """The customer's event limit, as the HTTP ingress applies it; over it, the subscription waits
        (unacknowledged messages stay with the broker) instead of refusing what cannot be sent again."""
        if self.limit is None:
            return
        while True:
            try:
                await self.limit(tenant_id)
                return
            except TooManyRequestsError as exc:
                await asyncio.sleep(float(exc.extra.get("retry_after", 1)))
