"""Pure steps (set, condition, parallel, join) run inline, in the transaction that completes the step
before them: a chain of them costs one message, each still leaves its row, output and order, and a
broken expression among them fails the run with its reason."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.support.workers import drain, running_worker
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


async def _run_to_end(
    app: Litestar, api: httpx.AsyncClient, world: World, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}"
    made = await api.post(
        f"{base}/workflows/",
        headers=auth(c.key),
        json={"key": "chain", "name": "Chain", "definition": {"steps": steps}},
    )
    assert made.status_code == 201, made.text
    started = await api.post(
        f"{base}/workflows/{made.json()['id']}/runs", headers=auth(c.key), json={"event": {"n": 2}}
    )
    assert started.status_code == 201, started.text
    with running_worker(app):
        drain(app)
    detail: dict[str, Any] = (await api.get(f"{base}/runs/{started.json()['id']}", headers=auth(c.key))).json()
    return detail


async def test_a_chain_of_pure_steps_runs_in_one_go_and_keeps_every_step(
    app: Litestar, api: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    real = app.state.broker.enqueue

    def counting(message: Any, *, delay: int | None = None) -> Any:
        sent.append(1)
        return real(message, delay=delay)

    monkeypatch.setattr(app.state.broker, "enqueue", counting)
    chain: list[dict[str, Any]] = [
        {
            "key": f"s{n}",
            "kind": "set",
            "values": {"v": f"steps.s{n - 1}.v + 1" if n else "event.n"},
            "next": f"s{n + 1}",
        }
        for n in range(30)
    ]
    chain[-1]["next"] = "fork"
    chain += [
        {"key": "fork", "kind": "parallel", "branches": ["big", "small"]},
        {"key": "big", "kind": "condition", "when": "steps.s29.v > 10", "then": "mark", "next": "both"},
        {"key": "mark", "kind": "set", "values": {"big": "true"}, "next": "both"},
        {"key": "small", "kind": "set", "values": {"small": "false"}, "next": "both"},
        {"key": "both", "kind": "join", "after": ["mark", "small"]},
    ]
    detail = await _run_to_end(app, api, world, chain)
    assert detail["run"]["status"] == "succeeded", detail["run"]
    by_key = {s["step_key"]: s for s in detail["steps"]}
    assert by_key["s29"]["output"] == {"v": 31} and by_key["mark"]["output"] == {"big": True}
    assert all(s["status"] == "succeeded" and s["attempt"] == 1 for s in detail["steps"])
    assert len(detail["steps"]) == 35
    assert len(sent) == 1, "only the first step went by message; the rest ran inline"


async def test_a_broken_expression_inline_fails_the_run_with_its_reason(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    steps = [
        {"key": "a", "kind": "set", "values": {"x": "1"}, "next": "b"},
        {"key": "b", "kind": "set", "values": {"y": "steps.a.x / 0"}, "next": "c"},
        {"key": "c", "kind": "set", "values": {"z": "2"}},
    ]
    detail = await _run_to_end(app, api, world, steps)
    by_key = {s["step_key"]: s for s in detail["steps"]}
    assert detail["run"]["status"] == "failed" and detail["run"]["error"].startswith("b: ")
    assert by_key["b"]["status"] == "failed" and by_key["b"]["error_kind"] == "invalid"
    assert "c" not in by_key
