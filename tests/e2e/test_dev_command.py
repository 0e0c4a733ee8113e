"""``andon dev`` as a newcomer runs it: a fresh data directory, a seeded demo, a ready server; a second
run reuses the data and the keys; ``--reset`` starts over."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.support.devserver import running_dev

pytestmark = pytest.mark.slow


def _creds(data_dir: Path) -> dict[str, object]:
    return dict(json.loads((data_dir / "demo-credentials.json").read_text()))


def test_dev_seeds_serves_and_reuses(tmp_path: Path) -> None:
    data = tmp_path / "andon-data"
    with running_dev(data) as base:
        creds = _creds(data)
        keys = creds["api_keys"]
        assert isinstance(keys, dict)
        assert set(keys) == {"operator", "partners", "customers"}
        assert set(keys["partners"]) == {"northwind", "bluefin"}
        assert set(keys["customers"]) == {"acme-castings", "helix-packaging", "corvid-automotive"}
        northwind = {"Authorization": f"Bearer {keys['partners']['northwind']}"}
        customers = httpx.get(f"{base}/api/v1/customers", headers=northwind).json()["items"]
        assert sorted(c["slug"] for c in customers) == ["acme-castings", "helix-packaging"]
        acme = next(c for c in customers if c["slug"] == "acme-castings")
        assets = httpx.get(f"{base}/api/v1/customers/{acme['id']}/assets", headers=northwind).json()
        assert assets["total"] == 6
        calendars = httpx.get(f"{base}/api/v1/customers/{acme['id']}/shift-calendars", headers=northwind).json()
        assert [s["name"] for s in calendars["items"][0]["shifts"]] == ["Early", "Late", "Night", "Weekend"]
        logins = creds["logins"]
        assert isinstance(logins, list) and len(logins) == 10
        assert {p["role"] for p in logins} >= {"platform_operator", "partner_admin", "customer_admin", "auditor"}
        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            page = browser.get("/login")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            supervisor = next(p for p in logins if p["role"] == "plant_supervisor")
            signed_in = browser.post(
                "/login",
                data={
                    "csrf_token": token,
                    "email": supervisor["email"],
                    "password": supervisor["password"],
                    "next": "/account",
                },
            )
            assert signed_in.status_code == 200 and "plant_supervisor" in signed_in.text
        branded = httpx.get(f"{base}/login", headers={"Host": "northwind.localhost"}).text
        assert "Northwind Ops Center" in branded and "Andon" not in branded
        acme_key = {"Authorization": f"Bearer {keys['customers']['acme-castings']}"}
        flows = httpx.get(f"{base}/api/v1/customers/{acme['id']}/workflows", headers=acme_key).json()["items"]
        assert [f["key"] for f in flows] == ["machine-alarm-response"]
        # The demo plays plant traffic from the start: events arrive without anyone sending them.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = httpx.get(f"{base}/api/v1/events", headers=acme_key).json()
            if events["total"]:
                break
            time.sleep(0.5)
        assert events["total"] >= 1 and events["items"][0]["source"] == "urn:andon:demo:simulator"
        corvid = {"Authorization": f"Bearer {keys['customers']['corvid-automotive']}"}
        assert httpx.get(f"{base}/api/v1/customers/{acme['id']}", headers=corvid).status_code == 404

    with running_dev(data) as base:
        assert _creds(data) == creds  # same data, same keys
        assert httpx.get(f"{base}/api/v1/customers", headers=northwind).status_code == 200

    with running_dev(data, "--reset") as base:
        assert _creds(data) != creds
        assert httpx.get(f"{base}/api/v1/customers", headers=northwind).status_code == 401
