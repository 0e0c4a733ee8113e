"""MQTT ingress against the local Mosquitto broker: a gateway's message on its site's topic becomes an
event of that site, stored once however often the broker delivers it, and reaches the worker; a
Sparkplug-like body becomes data from its metrics; a bad message is refused and logged while the
subscription carries on; one customer's subscription never sees another's messages; what is
published while Andon is away, or while it fails before acknowledging, arrives afterwards; connection
changes apply without a restart.

Each test has its own topic root (``andon-test-<uuid>``), so parallel workers and earlier runs never
meet on the shared broker."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomqtt
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from andon.connectors.ingress.mqtt import MqttIngress
from andon.connectors.ingress.mqtt_payloads import delivery_for, sparkplug_reading
from andon.connectors.sources.intake import Check, ConnectionIntake, Delivery, Receipt
from andon.connectors.sources.kinds import MqttConfig
from andon.connectors.sources.repository import ConnectionFound
from andon.platform.config.settings import MqttSettings, Settings, WorkerSettings
from andon.platform.http.app import create_app
from andon.platform.http.errors import ValidationFailedError
from tests.events.test_correlation import alerts
from tests.support.ingress import ALARM, connection_deliveries, event_page, grown, scrape
from tests.support.workers import drain, relay_all, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
HOST, PORT = "127.0.0.1", 1883
READING = {"code": "E42", "message": "Over temperature", "value": 96.5, "ts": 1764115200000}


def _broker_reachable() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def mqtt_settings() -> MqttSettings:
    if not _broker_reachable():
        pytest.skip(f"needs an MQTT broker (Mosquitto) on {HOST}:{PORT}")
    return MqttSettings(
        url=f"mqtt://{HOST}:{PORT}",
        topic_root=f"andon-test-{uuid.uuid4().hex[:12]}",
        client_prefix="andon-test",
        reload_seconds=0.2,
        reconnect_min_seconds=0.1,
        reconnect_max_seconds=0.5,
        max_payload_bytes=4096,
    )


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


Ingresses = Callable[..., MqttIngress]


@pytest.fixture
async def ingresses(app: Litestar, mqtt_settings: MqttSettings, wakes: Wakes) -> AsyncIterator[Ingresses]:
    """Makes MQTT ingresses on the test's app (started); stops them, and clears the broker sessions
    they made, at the end."""
    made: list[MqttIngress] = []

    def make(intake: ConnectionIntake | None = None) -> MqttIngress:
        ingress = MqttIngress(intake or ConnectionIntake(app.state.sessionmaker), mqtt_settings, on_events=wakes)
        ingress.start()
        made.append(ingress)
        return ingress

    yield make
    for ingress in made:
        connections = list(ingress.subscriptions)
        await ingress.stop()
        for connection_id in connections:
            await ingress.forget(connection_id)


@pytest.fixture
async def ingress(ingresses: Ingresses) -> MqttIngress:
    return ingresses()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def subscribed(ingress: MqttIngress, connection: dict[str, Any]) -> None:
    async def ready() -> bool:
        return ingress.is_subscribed(uuid.UUID(connection["id"]))

    await eventually(ready, f"the subscription of {connection['name']}")


async def mqtt_connection(
    api: httpx.AsyncClient, tenant: Tenant, config: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    r = await api.post(
        f"/api/v1/customers/{tenant.customer_id}/connections/",
        headers=auth(tenant.key),
        json={"name": f"gateway {uuid.uuid4().hex[:8]}", "kind": "mqtt", "config": config, **fields},
    )
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


def topic_of(settings: MqttSettings, tenant: Tenant, relative: str) -> str:
    """Where a customer's gateway publishes: under the customer's namespace."""
    return f"{settings.topic_root}/{tenant.customer_id}/{relative}"


async def publish(topic: str, payload: bytes | dict[str, Any], *, qos: int = 1) -> None:
    """As a gateway does; returns once the broker has the message (QoS 1: its PUBACK)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with aiomqtt.Client(HOST, PORT, identifier=f"andon-test-gateway-{uuid.uuid4().hex}") as gateway:
        await gateway.publish(topic, body, qos=qos)


async def events_total(api: httpx.AsyncClient, tenant: Tenant, total: int) -> None:
    async def reached() -> bool:
        return bool((await event_page(api, tenant))["total"] >= total)

    await eventually(reached, f"{total} events")
    assert (await event_page(api, tenant))["total"] == total


async def logged(
    api: httpx.AsyncClient, tenant: Tenant, connection: dict[str, Any], count: int
) -> list[dict[str, Any]]:
    async def reached() -> bool:
        return len(await connection_deliveries(api, tenant, connection)) >= count

    await eventually(reached, f"{count} deliveries logged")
    log = await connection_deliveries(api, tenant, connection)
    assert len(log) == count, log
    return log


async def test_a_gateways_alarm_becomes_an_event_of_its_site_once_and_reaches_the_worker(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    ingress: MqttIngress,
    mqtt_settings: MqttSettings,
    wakes: Wakes,
) -> None:
    c = world.a.customer
    gateway = await mqtt_connection(api, c, {"topic": "plants/+/alarms/#", "site_level": 1}, event_type=ALARM)
    assert gateway["config"] == {"topic": "plants/+/alarms/#", "payload": "plain", "qos": 1, "site_level": 1}
    await subscribed(ingress, gateway)
    before = await scrape(api)

    relative = f"plants/{c.slug}-S/alarms/press-7"
    topic = topic_of(mqtt_settings, c, relative)
    body = json.dumps(READING).encode()
    await publish(topic, body)
    await events_total(api, c, 1)
    # The broker delivering it again (a QoS 1 redelivery is byte for byte the same): the same event.
    await publish(topic, body)
    log = await logged(api, c, gateway, 2)
    assert (await event_page(api, c))["total"] == 1

    [event] = (await event_page(api, c))["items"]
    assert (event["type"], event["source"], event["channel"]) == (ALARM, gateway["source"], "mqtt")
    assert event["data"] == READING and event["site_id"] == str(c.site_id)
    assert event["event_id"] == hashlib.sha256(relative.encode() + b"\x00" + body).hexdigest()
    assert [(d["outcome"], d["status_code"], d["webhook_id"]) for d in log] == [
        ("duplicate", 200, topic),
        ("accepted", 201, topic),
    ]
    assert log[0]["event_ids"] == log[1]["event_ids"] == [event["id"]]
    assert wakes.count == 1
    counted = grown(before, await scrape(api), "andon_ingress_deliveries_total", "outcome")
    assert counted == {("mqtt", "accepted"): 1, ("mqtt", "duplicate"): 1}

    assert await relay_all(app) == 1
    with running_worker(app):
        drain(app)
    [alert] = await alerts(api, world)
    assert alert["site_id"] == str(c.site_id) and alert["status"] == "triggered"
    assert (await event_page(api, c))["items"][0]["status"] == "processed"


async def test_a_sparkplug_body_becomes_data_from_its_metrics(
    api: httpx.AsyncClient, world: World, ingress: MqttIngress, mqtt_settings: MqttSettings
) -> None:
    c = world.a.customer
    gateway = await mqtt_connection(
        api,
        c,
        {"topic": "spBv1.0/+/DDATA/#", "payload": "sparkplug", "site_level": 1},
        event_type=ALARM,
        mapping={"assetid": "asset", "severity": "'high'"},
    )
    await subscribed(ingress, gateway)
    metrics: list[dict[str, Any]] = [
        {"name": "code", "value": "E7", "timestamp": 1764115199000},
        {"name": "message", "value": "Door open"},
        {"name": "asset", "value": f"{c.slug}-P"},
        {"name": "value", "value": 3.5},
    ]
    body = {"timestamp": 1764115200000, "seq": 7, "metrics": metrics}
    topic = topic_of(mqtt_settings, c, f"spBv1.0/{c.slug}-S/DDATA/edge-1/press")
    await publish(topic, body)
    # The same sequence number and timestamp again, whatever the values: the same reading.
    await publish(topic, {**body, "metrics": metrics[:3]})
    await logged(api, c, gateway, 2)
    [event] = (await event_page(api, c))["items"]
    assert event["data"] == {"code": "E7", "message": "Door open", "asset": f"{c.slug}-P", "value": 3.5}
    assert event["time"].startswith("2025-11-26T00:00:00")
    assert (event["site_id"], event["asset_id"], event["severity"]) == (str(c.site_id), str(c.asset_id), "high")
    # A new reading (the next sequence number) is a new event.
    await publish(topic, {**body, "seq": 8})
    await events_total(api, c, 2)


async def test_a_bad_message_is_refused_and_logged_and_the_next_still_flows(
    api: httpx.AsyncClient, world: World, ingress: MqttIngress, mqtt_settings: MqttSettings
) -> None:
    c = world.a.customer
    plain = await mqtt_connection(api, c, {"topic": "line/#"}, event_type=ALARM)
    sparkplug = await mqtt_connection(api, c, {"topic": "spb/#", "payload": "sparkplug"}, event_type=ALARM)
    await subscribed(ingress, plain)
    await subscribed(ingress, sparkplug)
    before = await scrape(api)

    await publish(topic_of(mqtt_settings, c, "line/1"), b"code=E1")
    await publish(topic_of(mqtt_settings, c, "line/2"), {"code": "E1"})
    await publish(topic_of(mqtt_settings, c, "line/3"), {"code": "E1", "message": "x" * 5000})
    await publish(topic_of(mqtt_settings, c, "spb/1"), {"timestamp": 1, "metrics": [{"value": 1}]})
    await publish(topic_of(mqtt_settings, c, "line/4"), READING)
    await events_total(api, c, 1)

    log = list(reversed(await logged(api, c, plain, 4)))
    assert [(d["outcome"], d["status_code"]) for d in log] == [
        ("refused", 422),
        ("refused", 422),
        ("refused", 413),
        ("accepted", 201),
    ]
    assert "$: the body is not JSON" in log[0]["reason"] and "data.message" in log[1]["reason"]
    assert "at most 4096" in log[2]["reason"] and log[2]["webhook_id"].endswith("line/3")
    [refused] = await logged(api, c, sparkplug, 1)
    assert refused["status_code"] == 422 and "metrics[0]" in refused["reason"] and "name" in refused["reason"]
    counted = grown(before, await scrape(api), "andon_ingress_deliveries_total", "outcome")
    assert counted == {("mqtt", "422"): 3, ("mqtt", "413"): 1, ("mqtt", "accepted"): 1}


@pytest.mark.postgres
async def test_a_message_postgresql_cannot_store_does_not_hold_up_the_next(
    api: httpx.AsyncClient, world: World, ingress: MqttIngress, mqtt_settings: MqttSettings
) -> None:
    """A NUL character is valid JSON but no PostgreSQL text: the message's fault, so it is dropped
    (counted, logged) rather than sent again for ever."""
    c = world.a.customer
    gateway = await mqtt_connection(api, c, {"topic": "line/#"}, event_type=ALARM)
    await subscribed(ingress, gateway)
    before = await scrape(api)
    await publish(topic_of(mqtt_settings, c, "line/1"), {"code": "E1", "message": "jam\u0000"})
    await publish(topic_of(mqtt_settings, c, "line/2"), READING)
    await events_total(api, c, 1)
    assert (await event_page(api, c))["items"][0]["data"] == READING
    counted = grown(before, await scrape(api), "andon_ingress_deliveries_total", "outcome")
    assert counted == {("mqtt", "422"): 1, ("mqtt", "accepted"): 1}


async def test_another_customers_subscription_never_sees_these_messages(
    api: httpx.AsyncClient, world: World, ingress: MqttIngress, mqtt_settings: MqttSettings
) -> None:
    a, b = world.a.customer, world.b.customer
    mine = await mqtt_connection(api, a, {"topic": "plants/+/alarms/#"}, event_type=ALARM)
    # The other customer asks for the very same topics, and for everything it can name.
    same = await mqtt_connection(api, b, {"topic": "plants/+/alarms/#"}, event_type=ALARM)
    everything = await mqtt_connection(api, b, {"topic": "#"}, event_type=ALARM)
    for connection in (mine, same, everything):
        await subscribed(ingress, connection)

    await publish(topic_of(mqtt_settings, a, "plants/north/alarms/E42"), READING)
    # Outside every customer's namespace (a gateway that forgot it): no one's.
    await publish(f"{mqtt_settings.topic_root}/plants/north/alarms/E43", READING)
    await publish("plants/north/alarms/E44", READING)
    await events_total(api, a, 1)
    # B's own gateway reaches B, and B only (each of its two connections makes an event of its own).
    await publish(topic_of(mqtt_settings, b, "plants/south/alarms/E1"), READING)
    await logged(api, b, same, 1)
    await logged(api, b, everything, 1)
    await asyncio.sleep(0.5)  # time for anything misrouted to land
    assert (await event_page(api, a))["total"] == 1 and (await event_page(api, b))["total"] == 2
    assert len(await connection_deliveries(api, a, mine)) == 1
    assert {e["source"] for e in (await event_page(api, b))["items"]} == {same["source"], everything["source"]}
    # Nor can B read A's connection or its log.
    r = await api.get(f"/api/v1/customers/{b.customer_id}/connections/{mine['id']}/deliveries", headers=auth(b.key))
    assert r.status_code == 404


async def test_what_is_published_while_andon_is_away_arrives_when_it_is_back(
    api: httpx.AsyncClient, world: World, ingresses: Ingresses, mqtt_settings: MqttSettings
) -> None:
    c = world.a.customer
    gateway = await mqtt_connection(api, c, {"topic": "plants/#"}, event_type=ALARM)
    first = ingresses()
    await subscribed(first, gateway)
    await first.stop()

    topic = topic_of(mqtt_settings, c, "plants/north/alarms/E42")
    await publish(topic, READING)
    await publish(topic, {**READING, "code": "E43"})
    await asyncio.sleep(0.3)
    assert (await event_page(api, c))["total"] == 0

    ingresses()  # Andon starts again: the broker kept the session and hands the messages over
    await events_total(api, c, 2)
    assert {e["data"]["code"] for e in (await event_page(api, c))["items"]} == {"E42", "E43"}


class FailingIntake(ConnectionIntake):
    """Fails the first attempt at each planned message: before storing anything (the database away),
    or after committing but before the acknowledgement (a crash at the worst moment)."""

    def __init__(self, intake: ConnectionIntake, plan: dict[str, str]) -> None:
        super().__init__(intake.sessionmaker)
        self.plan = plan
        self.failed: list[str] = []

    async def receive(
        self, found: ConnectionFound, delivery: Delivery, *, channel: str, check: Check | None = None
    ) -> Receipt:
        code = json.loads(delivery.body)["code"]
        when = self.plan.pop(code, None)
        if when == "before":
            self.failed.append(code)
            raise ConnectionResetError("the database went away")
        receipt = await super().receive(found, delivery, channel=channel, check=check)
        if when == "after":
            self.failed.append(code)
            raise ConnectionResetError("the process died before the acknowledgement")
        return receipt


async def test_a_message_that_failed_before_its_acknowledgement_comes_again(
    app: Litestar, api: httpx.AsyncClient, world: World, ingresses: Ingresses, mqtt_settings: MqttSettings
) -> None:
    c = world.a.customer
    intake = FailingIntake(ConnectionIntake(app.state.sessionmaker), {"E1": "before", "E2": "after"})
    ingress = ingresses(intake)
    gateway = await mqtt_connection(api, c, {"topic": "line/#"}, event_type=ALARM)
    await subscribed(ingress, gateway)

    topic = topic_of(mqtt_settings, c, "line/1")
    await publish(topic, {**READING, "code": "E1"})
    await events_total(api, c, 1)
    await publish(topic, {**READING, "code": "E2"})
    log = list(reversed(await logged(api, c, gateway, 3)))
    assert intake.failed == ["E1", "E2"]
    # E1 was stored on its second delivery; E2 on its first, and its second was found to be a repeat.
    assert [d["outcome"] for d in log] == ["accepted", "accepted", "duplicate"]
    assert log[1]["event_ids"] == log[2]["event_ids"]
    assert (await event_page(api, c))["total"] == 2


async def test_connection_changes_apply_without_a_restart(
    api: httpx.AsyncClient, world: World, ingress: MqttIngress, mqtt_settings: MqttSettings
) -> None:
    c = world.a.customer
    item = f"/api/v1/customers/{c.customer_id}/connections"
    gateway = await mqtt_connection(api, c, {"topic": "old/#"}, event_type=ALARM)
    await subscribed(ingress, gateway)
    await publish(topic_of(mqtt_settings, c, "old/1"), {**READING, "code": "OLD1"})
    await events_total(api, c, 1)

    # A new topic: the old one is dropped from the subscription, the new one taken up.
    moved = await api.patch(f"{item}/{gateway['id']}", headers=auth(c.key), json={"config": {"topic": "new/#"}})
    assert moved.status_code == 200, moved.text
    connection_id = uuid.UUID(gateway["id"])

    async def on_new_topic() -> bool:
        subscription = ingress.subscriptions.get(connection_id)
        return bool(subscription and subscription.config.topic == "new/#" and subscription.subscribed.is_set())

    await eventually(on_new_topic, "the new topic")
    await publish(topic_of(mqtt_settings, c, "old/1"), {**READING, "code": "OLD2"})
    await publish(topic_of(mqtt_settings, c, "new/1"), {**READING, "code": "NEW1"})
    await events_total(api, c, 2)
    await asyncio.sleep(0.3)
    assert {e["data"]["code"] for e in (await event_page(api, c))["items"]} == {"OLD1", "NEW1"}

    # Disabled: unsubscribed, and nothing queues for it; enabled again, it takes what comes from then on.
    off = await api.patch(f"{item}/{gateway['id']}", headers=auth(c.key), json={"enabled": False})
    assert off.status_code == 200

    async def gone() -> bool:
        return connection_id not in ingress.subscriptions

    await eventually(gone, "the subscription to end")
    await publish(topic_of(mqtt_settings, c, "new/2"), {**READING, "code": "WHILE-OFF"})
    on = await api.patch(f"{item}/{gateway['id']}", headers=auth(c.key), json={"enabled": True})
    assert on.status_code == 200
    await subscribed(ingress, gateway)
    await publish(topic_of(mqtt_settings, c, "new/3"), {**READING, "code": "NEW3"})
    await events_total(api, c, 3)
    assert "WHILE-OFF" not in {e["data"]["code"] for e in (await event_page(api, c))["items"]}

    assert (await api.delete(f"{item}/{gateway['id']}", headers=auth(c.key))).status_code == 204
    await eventually(gone, "the subscription to end")


async def test_the_app_runs_the_ingress_beside_its_workers_when_a_broker_is_configured(
    settings: Settings, world: World, mqtt_settings: MqttSettings
) -> None:
    unconfigured = create_app(settings)
    assert unconfigured.state.mqtt is None
    await unconfigured.state.engine.dispose()
    with pytest.raises(ValueError, match=r"mqtt\.url"):
        MqttIngress(ConnectionIntake(unconfigured.state.sessionmaker), MqttSettings(url="http://broker:1883"))

    c = world.a.customer
    one_process = settings.model_copy(update={"mqtt": mqtt_settings, "workers": WorkerSettings(in_process=True)})
    app = create_app(one_process)
    async with AsyncTestClient(app=app) as client:  # its lifespan starts relay, worker and ingress
        gateway = await mqtt_connection(client, c, {"topic": "plants/+/#", "site_level": 1}, event_type=ALARM)
        await subscribed(app.state.mqtt, gateway)
        await publish(topic_of(mqtt_settings, c, f"plants/{c.slug}-S/alarms/E42"), READING)

        async def alerted() -> bool:
            r = await client.get(f"/api/v1/customers/{c.customer_id}/alerts", headers=auth(c.key))
            return bool(r.json()["total"] == 1)

        await eventually(alerted, "the alert")
    assert app.state.mqtt.subscriptions == {}  # stopped with the app; its broker session stays
    await MqttIngress(ConnectionIntake(app.state.sessionmaker), mqtt_settings).forget(uuid.UUID(gateway["id"]))


async def test_mqtt_settings_are_checked_when_a_connection_is_saved(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    url = f"/api/v1/customers/{c.customer_id}/connections/"
    refusals = [
        ({"topic": "plants/#/alarms"}, "config.topic"),
        ({"topic": "plants/north+/alarms"}, "config.topic"),
        ({"topic": "$SYS/#"}, "config.topic"),
        ({"topic": "plants/+/alarms", "site_level": 3}, "config.site_level"),
        ({"topic": "plants/#", "qos": 2}, "config.qos"),
    ]
    for config, field in refusals:
        r = await api.post(url, headers=auth(c.key), json={"name": "gw", "kind": "mqtt", "config": config})
        assert r.status_code == 422, (config, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], r.json()
    ok = await api.post(
        url,
        headers=auth(c.key),
        json={"name": "gw", "kind": "mqtt", "config": {"topic": "plants/+/#", "site_level": 5}},
    )
    assert ok.status_code == 201, ok.text


def test_what_a_message_is_made_of() -> None:
    plain = MqttConfig(topic="plants/+/alarms/#", site_level=1)
    body = json.dumps(READING).encode()
    delivery, check = delivery_for(plain, "root/t/plants/north/alarms/E1", "plants/north/alarms/E1", body, max_bytes=99)
    assert check is None and delivery.defaults == {"siteid": "north"} and delivery.body == body
    # Ids follow topic and body: the same reading on another site's topic is another event.
    other, _ = delivery_for(plain, "root/t/plants/south/alarms/E1", "plants/south/alarms/E1", body, max_bytes=99)
    assert delivery.delivery_id != other.delivery_id
    short, _ = delivery_for(plain, "root/t/plants", "plants", body, max_bytes=99)
    assert short.defaults == {}

    reading = sparkplug_reading(b'{"seq": 1, "metrics": [{"name": "a", "value": 1, "timestamp": 1000}, {"name": "b"}]}')
    assert (reading.data, reading.timestamp, reading.time) == ({"a": 1, "b": None}, 1000, "1970-01-01T00:00:01+00:00")
    for bad, field in [
        (b"[]", "$"),
        (b'{"metrics": []}', "metrics"),
        (b'{"metrics": [{"value": 1}]}', "metrics[0].name"),
        (b'{"metrics": [{"name": "a"}], "timestamp": -1}', "timestamp"),
        (b"{", "$"),
    ]:
        with pytest.raises(ValidationFailedError) as refused:
            sparkplug_reading(bad)
        assert refused.value.extra["errors"][0]["field"] == field, (bad, refused.value.detail)
