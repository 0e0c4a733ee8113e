"""``/metrics``: Prometheus text for the holder of the metrics token; without a token, open outside
production and absent in production; never in the API's published schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from andon.platform.config.settings import Environment, ObservabilitySettings, Settings
from andon.platform.http.app import OPENAPI_PATH, create_app
from tests.support.browser import browser_on
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
TOKEN = "scrape-" + "t" * 32


@asynccontextmanager
async def _api(settings: Settings, **changes: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=changes))
    try:
        async with browser_on(app, "andon.test") as api:
            yield api
    finally:
        await app.state.engine.dispose()


def _without_address(problem: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k not in ("instance", "request_id")}


async def test_with_a_token_only_its_holder_reads_the_metrics(settings: Settings, world: World) -> None:
    async with _api(settings, observability=ObservabilitySettings(metrics_token=SecretStr(TOKEN))) as api:
        ok = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200, ok.text
        assert ok.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "# TYPE andon_ingress_deliveries_total counter" in ok.text
        assert "# TYPE andon_ingress_seconds histogram" in ok.text
        # Prometheus asks for OpenMetrics, and gets it.
        open_metrics = await api.get(
            "/metrics",
            headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/openmetrics-text; version=1.0.0"},
        )
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
        assert open_metrics.text.endswith("# EOF\n")
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Basic {TOKEN}"}):
            refused = await api.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["content-type"] == "application/problem+json"
        # An API key, even the operator's, is not the metrics token.
        assert (await api.get("/metrics", headers=auth(world.operator_key))).status_code == 401


async def test_without_a_token_metrics_are_open_in_development_and_absent_in_production(settings: Settings) -> None:
    async with _api(settings, environment=Environment.DEVELOPMENT) as api:
        assert (await api.get("/metrics")).status_code == 200
    async with _api(settings, environment=Environment.PRODUCTION) as api:
        absent, nowhere = await api.get("/metrics"), await api.get("/no-such-address")
        assert absent.status_code == 404 and absent.headers["content-type"] == "application/problem+json"
        # The same answer as an address that does not exist.
        assert _without_address(absent.json()) == _without_address(nowhere.json())
    async with _api(
        settings,
        environment=Environment.PRODUCTION,
        observability=ObservabilitySettings(metrics_token=SecretStr(TOKEN)),
    ) as api:
        assert (await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200


async def test_metrics_are_not_in_the_api_schema(api: httpx.AsyncClient) -> None:
    schema = await api.get(f"{OPENAPI_PATH}/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/events" in paths and not any(p.startswith("/metrics") for p in paths)
