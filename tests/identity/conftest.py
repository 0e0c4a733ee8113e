"""Two real OpenID Connect providers (npm ``oidc-provider``), one per organisation, each on its own
portal host name, started once per test module."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.browser import browser_on
from tests.support.oidc_provider import OidcProvider, start_provider

__all__ = ["Realm", "browser_on"]

SECRET = "web-secret-with-enough-entropy-123"


@dataclass(frozen=True)
class Realm:
    """An organisation's identity provider as the tests see it."""

    provider: OidcProvider
    host: str
    client_id: str
    client_secret: str
    accounts: dict[str, dict[str, Any]]

    @property
    def issuer(self) -> str:
        return self.provider.issuer


def _realm(tmp: Any, name: str, accounts: list[dict[str, Any]]) -> Realm:
    host = f"login.{name}.test"
    client: dict[str, Any] = {
        "client_id": f"andon-{name}",
        "client_secret": SECRET,
        "redirect_uris": [f"http://{host}/auth/oidc/callback"],
        "post_logout_redirect_uris": [f"http://{host}/login?logged_out=true"],
        "grant_types": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    provider = start_provider(tmp / name, [client], accounts, resource_audience=f"https://api.{name}.test")
    return Realm(provider, host, client["client_id"], SECRET, {a["email"]: a for a in accounts})


@pytest.fixture(scope="module")
def realms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Realm]]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        # A newcomer with only Python still gets a green run; CI, which has Node.js, must run these.
        if os.environ.get("CI"):
            pytest.fail("Node.js 20 and npm are needed for the OpenID Connect provider tests")
        pytest.skip("Node.js is not installed: the single sign-on tests need it (CI runs them)")
    tmp = tmp_path_factory.mktemp("oidc")
    alpha = _realm(
        tmp,
        "alpha",
        [
            {
                "sub": "a-1",
                "email": "ada@alpha-msp.example",
                "name": "Ada Admin",
                "groups": ["msp-admins"],
                "password": "alpha-pass-1",
            },
            {
                "sub": "a-2",
                "email": "sam@alpha-msp.example",
                "name": "Sam Support",
                "groups": ["msp-support"],
                "password": "alpha-pass-2",
            },
        ],
    )
    bravo = _realm(
        tmp,
        "bravo",
        [
            {
                "sub": "b-1",
                "email": "sue@bravo-plant.example",
                "name": "Sue Supervisor",
                "groups": ["supervisors"],
                "password": "bravo-pass-1",
            },
        ],
    )
    yield {"alpha": alpha, "bravo": bravo}
    alpha.provider.stop()
    bravo.provider.stop()
