"""Liveness (the process answers) and readiness (the database and the broker answer)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Controller, Response, get
from litestar.datastructures import State
from sqlalchemy import text

from andon.platform.workers.broker import broker_ready


class HealthController(Controller):
    path = "/health"
    tags = ["Health"]
    include_in_schema = False

    @get("/live", opt={"public": True}, sync_to_thread=False)
    def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", opt={"public": True})
    async def ready(self, state: State) -> Response[dict[str, Any]]:
        checks: dict[str, Any] = {}
        ok = True
        started = time.perf_counter()
        try:
            async with state.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
            checks["database"] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
        except Exception as exc:  # readiness reports any failure instead of raising
            ok = False
            checks["database"] = {"ok": False, "error": type(exc).__name__}
        broker_ok, detail = await asyncio.to_thread(broker_ready, state.broker)
        checks["broker"] = {"ok": broker_ok, "kind": detail}
        ok = ok and broker_ok
        return Response({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)
