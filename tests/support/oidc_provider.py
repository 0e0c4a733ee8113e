"""A real OpenID Connect provider (node oidc-provider 9) for integration tests, plus HTTP drivers for its pages.

The provider lives in tests/support/node (provider.mjs). It is configured by a JSON file and serves plain http on
127.0.0.1: authorization code + PKCE (S256, required), RS256 ID tokens carrying email/email_verified/name/groups,
auto-consent, RP-initiated logout and client_credentials with JWT access tokens for ``resource_audience``.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

OIDC_DIR = Path(__file__).resolve().parent / "node"
PROVIDER_SCRIPT = OIDC_DIR / "provider.mjs"
READY_TIMEOUT = 20.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_HOPS = 15


def ensure_node_modules() -> None:
    """Install the provider's npm dependencies (``npm ci``) once; safe to call from several xdist workers."""
    marker = OIDC_DIR / "node_modules" / "axe-core" / "package.json"
    if marker.exists():
        return
    digest = hashlib.sha256(str(OIDC_DIR).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"andon-oidc-npm-{digest}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.exists():  # another worker finished while we waited
                return
            done = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"],
                cwd=OIDC_DIR,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0 or not marker.exists():
                raise RuntimeError(
                    f"npm ci failed in {OIDC_DIR} (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class OidcProvider:
    issuer: str
    port: int
    config_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path | None = None  # the provider's stderr

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_provider(
    tmp_dir: Path,
    clients: list[dict[str, Any]],
    accounts: list[dict[str, Any]],
    resource_audience: str | None = None,
) -> OidcProvider:
    """Start ``node provider.mjs`` on a free port and wait for its ``READY <issuer>`` line.

    clients: {client_id, client_secret, redirect_uris, post_logout_redirect_uris, grant_types,
    token_endpoint_auth_method}; accounts: {sub, email, name, groups, password}.
    """
    ensure_node_modules()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    config: dict[str, Any] = {"issuer": issuer, "port": port, "clients": clients, "accounts": accounts}
    if resource_audience is not None:
        config["resource_audience"] = resource_audience
    config_path = tmp_dir / f"oidc-provider-{port}.json"
    config_path.write_text(json.dumps(config, indent=2))
    out_path = tmp_dir / f"oidc-provider-{port}.out"
    log_path = tmp_dir / f"oidc-provider-{port}.err"
    with out_path.open("wb") as out, log_path.open("wb") as err:
        process = subprocess.Popen(
            ["node", str(PROVIDER_SCRIPT), str(config_path)], cwd=OIDC_DIR, stdout=out, stderr=err
        )
    provider = OidcProvider(issuer=issuer, port=port, config_path=config_path, process=process, log_path=log_path)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if f"READY {issuer}" in out_path.read_text(errors="replace"):
            return provider
        exited = process.poll() is not None
        if exited or time.monotonic() > deadline:
            provider.stop()
            reason = f"exited with {process.returncode}" if exited else f"not ready after {READY_TIMEOUT:.0f}s"
            raise RuntimeError(f"OIDC provider {reason}; stderr:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.02)


# --- driving the provider's pages -------------------------------------------------------------------------------


@dataclass
class _Form:
    action: str
    method: str
    inputs: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(action=a.get("action", ""), method=a.get("method", "get").lower()))
            self._open = True
        elif tag == "input" and self._open and a.get("name"):
            self.forms[-1].inputs[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = False


def _forms(response: httpx.Response) -> list[_Form]:
    if "html" not in response.headers.get("content-type", ""):
        return []
    parser = _FormParser()
    parser.feed(response.text)
    return parser.forms


def _origin(url: str | httpx.URL) -> tuple[str, str]:
    parts = urlsplit(str(url))
    return parts.scheme, parts.netloc


async def _drive(client: httpx.AsyncClient, start_url: str, fill: dict[str, str], *, form_field: str) -> httpx.Response:
    """GET start_url, follow same-origin redirects, submit the first form having ``form_field`` once (merged with
    ``fill``), and return the first redirect leaving the provider's origin, or any other terminal response."""
    origin = _origin(start_url)
    response = await client.get(start_url, follow_redirects=False)
    submitted = False
    for _ in range(_MAX_HOPS):
        if response.status_code in _REDIRECTS:
            target = urljoin(str(response.url), response.headers["location"])
            if _origin(target) != origin:
                return response
            response = await client.get(target, follow_redirects=False)
            continue
        if response.status_code != 200 or submitted:
            return response  # error page, re-rendered login form (wrong password), or a final page
        form = next((f for f in _forms(response) if form_field in f.inputs), None)
        if form is None:
            return response
        submitted = True
        data = {**form.inputs, **fill}
        action = urljoin(str(response.url), form.action or str(response.url))
        response = await client.post(action, data=data, follow_redirects=False)
    raise RuntimeError(f"OIDC provider: too many hops starting at {start_url}")


async def provider_login(client: httpx.AsyncClient, authorize_url: str, email: str, password: str) -> httpx.Response:
    """Sign in at the provider and return (unfollowed) its redirect back to the RP: 303 to redirect_uri?code&state&iss.

    ``client`` keeps the provider's cookies; with a live provider session no form is shown and the redirect comes
    straight away. A wrong password returns the re-rendered form (200, "Invalid email or password").
    """
    return await _drive(client, authorize_url, {"login": email, "password": password}, form_field="login")


async def provider_logout(client: httpx.AsyncClient, end_session_url: str) -> httpx.Response:
    """Complete RP-initiated logout: GET the end_session URL, confirm the provider's form (xsrf + ``logout=yes``) and
    return the unfollowed redirect to post_logout_redirect_uri (or the provider's success page if there is none)."""
    return await _drive(client, end_session_url, {"logout": "yes"}, form_field="xsrf")


async def client_credentials_token(
    issuer: str,
    client_id: str,
    client_secret: str,
    resource: str,
    *,
    scope: str | None = None,
    auth_method: str = "client_secret_basic",
) -> str:
    """Fetch a client_credentials access token for ``resource``; it is an RS256 JWT with ``aud`` = the resource."""
    data = {"grant_type": "client_credentials", "resource": resource}
    if scope is not None:
        data["scope"] = scope
    headers: dict[str, str] = {}
    if auth_method == "client_secret_post":
        data |= {"client_id": client_id, "client_secret": client_secret}
    else:  # RFC 6749 2.3.1: form-urlencode id and secret before Basic encoding
        raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    async with httpx.AsyncClient(timeout=10) as http:
        meta = (await http.get(f"{issuer}/.well-known/openid-configuration")).raise_for_status().json()
        response = await http.post(meta["token_endpoint"], data=data, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"client_credentials failed: {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token
