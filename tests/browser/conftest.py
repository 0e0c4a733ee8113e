"""Browser tests: Debian Chromium driven by Playwright against ``andon dev`` in its own process.

Chromium is installed by ``.ci/run`` (apt); on a machine without it these tests are skipped locally
and fail in CI, where they must run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.devserver import free_port, running_dev
from tests.support.oidc_provider import OIDC_DIR, ensure_node_modules

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-first-run",
]
AXE = OIDC_DIR / "node_modules" / "axe-core" / "axe.min.js"


@dataclass(frozen=True)
class DevServer:
    port: int
    creds: dict[str, Any]

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    def login(self, role: str) -> dict[str, str]:
        return next(p for p in self.creds["logins"] if p["role"] == role)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs the Debian package 'chromium'")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI runs these tests")
    ensure_node_modules()  # axe-core
    return path


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    data = tmp_path_factory.mktemp("dev")
    port = free_port()
    # Without the demo's own plant traffic: the browser tests count the incidents they make.
    with running_dev(data, "--no-traffic", port=port):
        yield DevServer(port, json.loads((data / "demo-credentials.json").read_text()))


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def serious_accessibility_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page, as readable lines."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def fill_sign_in(page: Any, who: dict[str, str]) -> None:
    """The two-step sign-in form, already open on ``page``: the e-mail, then the password."""
    page.get_by_label("Work e-mail").fill(who["email"])
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password").fill(who["password"])
    page.get_by_role("button", name="Sign in").click()
