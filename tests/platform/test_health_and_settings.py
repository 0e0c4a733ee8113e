"""Health endpoints, request ids, structured logs and fail-fast production settings."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from pydantic import SecretStr, ValidationError

from andon.platform.config.settings import (
    DatabaseSettings,
    Environment,
    RedisSettings,
    SecuritySettings,
    Settings,
)
from andon.platform.http.app import create_app

pytestmark = pytest.mark.anyio


async def test_live_and_ready(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True and body["checks"]["broker"]["ok"] is True


async def test_ready_reports_a_dead_database_and_broker(settings: Settings) -> None:
    settings.database = DatabaseSettings(url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    settings.redis = RedisSettings(url="redis://127.0.0.1:1/0")
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        r = await client.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["checks"]["database"]["ok"] is False
    assert r.json()["checks"]["broker"] == {"ok": False, "kind": "redis: ConnectionError"}


async def test_request_id_is_echoed_or_minted_and_logged(
    client: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="andon.access")
    r = await client.get("/health/live", headers={"X-Request-ID": "trace-abc.123"})
    assert r.headers["x-request-id"] == "trace-abc.123"
    minted = await client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert minted.headers["x-request-id"] != "bad id with spaces" and len(minted.headers["x-request-id"]) == 32
    problem = await client.get("/api/v1/customers")
    assert problem.json()["request_id"] == problem.headers["x-request-id"]
    access = [r for r in caplog.records if r.name == "andon.access"]
    assert len(access) == 3
    # Rendered by the app's own handler: one JSON object per line, with the request id bound.
    rendered = json.loads(logging.getLogger().handlers[0].format(access[0]))
    assert {
        "event": "request",
        "request_id": "trace-abc.123",
        "status": 200,
        "path": "/health/live",
        "level": "info",
        "logger": "andon.access",
    }.items() <= rendered.items()
    assert rendered["timestamp"].endswith("Z")


async def test_openapi_is_public(client: AsyncTestClient[Any]) -> None:
    spec = (await client.get("/api/docs/openapi.json")).json()
    assert spec["info"]["title"] == "Andon API"
    assert "/api/v1/customers/{customer_id}/plant-imports" in spec["paths"]
    assert (await client.get("/api/docs")).status_code == 200


def test_production_refuses_to_start_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANDON_DATABASE_URL", "ANDON_REDIS_URL", "ANDON_SECURITY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError) as err:
        Settings(environment=Environment.PRODUCTION, database=DatabaseSettings(url="sqlite+aiosqlite:///x.db"))
    message = str(err.value)
    for name in ("ANDON_SECURITY_SECRET_KEY", "ANDON_DATABASE_URL", "ANDON_REDIS_URL"):
        assert name in message


def test_production_starts_with_them() -> None:
    s = Settings(
        environment=Environment.PRODUCTION,
        database=DatabaseSettings(url="postgresql+asyncpg://app@db/andon"),
        redis=RedisSettings(url="redis://cache:6379/0"),
        security=SecuritySettings(secret_key=SecretStr("x" * 40)),
    )
    assert s.database.is_postgres


def test_environment_variables_map_to_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANDON_DATABASE_URL", "postgresql+asyncpg://u@h/d")
    monkeypatch.setenv("ANDON_REDIS_URL", "redis://r:6379/1")
    monkeypatch.setenv("ANDON_SECURITY_MAX_BODY_BYTES", "1234")
    s = Settings()
    assert (s.database.url, s.redis.url, s.security.max_body_bytes) == (
        "postgresql+asyncpg://u@h/d",
        "redis://r:6379/1",
        1234,
    )
