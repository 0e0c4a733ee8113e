"""The generic REST adapter: any JSON API, with an API key, basic, bearer or OAuth2 client-credentials
authentication. Domain adapters (work orders, tickets, ...) are REST calls with a mapping on top.

OAuth2 tokens are asked for through the egress guard (Authlib shapes the request and holds the token),
kept per connection until shortly before they expire, and asked for again once when the system
answers 401 to a token it had accepted before (revoked or expired early).
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Annotated, Any, Literal

import httpx
import msgspec
from authlib.oauth2.rfc6749 import OAuth2Token
from authlib.oauth2.rfc6749.parameters import prepare_token_request

import andon
from andon.connectors.egress import EgressError, EgressResponse
from andon.connectors.outbound.errors import ConnectorError, from_egress, from_status
from andon.connectors.outbound.types import Capability, Checker, ConnectorType, SecretField, Using
from andon.platform.engine.capabilities import FORBIDDEN, INVALID

HeaderName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,99}$")]
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", max_length=2000)]
Auth = Literal["none", "api_key", "basic", "bearer", "oauth2_client_credentials"]
# A token is asked for again this long before it expires, so none expires in flight.
TOKEN_LEEWAY_SECONDS = 30


class RestConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    base_url: HttpUrl
    auth: Auth = "none"
    # api_key: the header that carries the key.
    api_key_header: HeaderName = "X-API-Key"
    # basic: the user name (the password is a secret).
    username: str | None = None
    # oauth2_client_credentials: where tokens come from, the client id and the scope asked for.
    token_url: HttpUrl | None = None
    client_id: str | None = None
    scope: str | None = None
    # Extra headers every call carries (not for credentials: those are secrets).
    headers: dict[str, str] = {}

    def __post_init__(self) -> None:
        if self.auth == "basic" and not self.username:
            raise ValueError("auth basic needs username")
        if self.auth == "oauth2_client_credentials" and not (self.token_url and self.client_id):
            raise ValueError("auth oauth2_client_credentials needs token_url and client_id")


class RestRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    # Joined to the connection's base_url; a full URL is refused (calls stay on the configured system).
    path: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    query: dict[str, str] = {}
    json: Any = None
    headers: dict[str, str] = {}


_RESERVED = frozenset({"host", "authorization", "idempotency-key", "content-length", "transfer-encoding", "cookie"})


class TokenCache:
    """OAuth2 tokens per connection; one request for a token at a time per connection."""

    def __init__(self) -> None:
        self._tokens: dict[Any, OAuth2Token] = {}
        self._locks: dict[Any, asyncio.Lock] = {}
        self.issued = 0

    def forget(self, key: Any, stale: OAuth2Token | None = None) -> None:
        if stale is None or self._tokens.get(key) is stale:
            self._tokens.pop(key, None)

    async def token(self, using: Using) -> OAuth2Token:
        key = (using.connection_id, using.config.client_id, using.config.scope)
        held = self._tokens.get(key)
        if held is not None and not held.is_expired(leeway=TOKEN_LEEWAY_SECONDS):
            return held
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            held = self._tokens.get(key)
            if held is not None and not held.is_expired(leeway=TOKEN_LEEWAY_SECONDS):
                return held
            fresh = await self._ask(using)
            self._tokens[key] = fresh
            self.issued += 1
            return fresh

    async def _ask(self, using: Using) -> OAuth2Token:
        config: RestConfig = using.config
        assert config.token_url is not None and config.client_id is not None
        body = prepare_token_request("client_credentials", **({"scope": config.scope} if config.scope else {}))
        pair = f"{config.client_id}:{using.secrets.get('client_secret', '')}".encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Authorization": "Basic " + base64.b64encode(pair).decode(),
        }
        try:
            response = await using.egress.send(
                "POST", config.token_url, using.limits, headers=headers, content=body.encode()
            )
        except EgressError as exc:
            raise from_egress(exc) from None
        if response.status in (400, 401, 403):
            raise ConnectorError(
                f"the token endpoint refused the client credentials ({response.status}): {response.snippet()}",
                FORBIDDEN,
            )
        failure = from_status("the token endpoint", response)
        if failure is not None:
            raise failure
        try:
            document = response.json()
        except msgspec.DecodeError:
            raise ConnectorError(
                f"the token endpoint answered something that is not JSON: {response.snippet()}"
            ) from None
        if not isinstance(document, dict) or not isinstance(document.get("access_token"), str):
            raise ConnectorError("the token endpoint's answer has no access_token")
        if "expires_in" in document and "expires_at" not in document:
            document["expires_at"] = int(time.time()) + int(document["expires_in"])
        return OAuth2Token.from_dict(document)


TOKENS = TokenCache()


def _url(config: RestConfig, path: str) -> str:
    if "://" in path or path.startswith("//"):
        raise ConnectorError("inputs.path: a path on the connection's system, not a full URL", INVALID)
    return config.base_url.rstrip("/") + ("/" + path.lstrip("/") if path else "")


async def _credentials(using: Using) -> tuple[dict[str, str], OAuth2Token | None]:
    config: RestConfig = using.config
    if config.auth == "api_key":
        return {config.api_key_header: using.secrets.get("api_key", "")}, None
    if config.auth == "basic":
        pair = f"{config.username}:{using.secrets.get('password', '')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}, None
    if config.auth == "bearer":
        return {"Authorization": "Bearer " + using.secrets.get("token", "")}, None
    if config.auth == "oauth2_client_credentials":
        token = await TOKENS.token(using)
        return {"Authorization": f"Bearer {token['access_token']}"}, token
    return {}, None


async def send(using: Using, request: RestRequest) -> EgressResponse:
    """One call: credentials added, the idempotency key sent, one fresh token after a 401 (OAuth2)."""
    config: RestConfig = using.config
    url = _url(config, request.path)
    if request.query:
        url = str(httpx.URL(url).copy_merge_params(request.query))
    extra = {k: v for k, v in {**config.headers, **request.headers}.items() if k.lower() not in _RESERVED}
    body = msgspec.json.encode(request.json) if request.json is not None else None
    for attempt in (1, 2):
        auth, token = await _credentials(using)
        headers = {
            "Accept": "application/json",
            "User-Agent": f"Andon/{andon.__version__}",
            "Idempotency-Key": using.idempotency_key,
            **({"Content-Type": "application/json"} if body is not None else {}),
            **extra,
            **auth,
        }
        try:
            response = await using.egress.send(request.method, url, using.limits, headers=headers, content=body)
        except EgressError as exc:
            raise from_egress(exc) from None
        if response.status == 401 and token is not None and attempt == 1:
            TOKENS.forget((using.connection_id, config.client_id, config.scope), token)
            continue
        return response
    raise AssertionError("unreachable")  # pragma: no cover


def answer(system: str, response: EgressResponse) -> dict[str, Any]:
    failure = from_status(system, response)
    if failure is not None:
        raise failure
    try:
        body = response.json()
    except msgspec.DecodeError:
        body = response.body.decode("utf-8", errors="replace")[:2000]
    return {"status": response.status, "body": body}


async def _request(using: Using, inputs: RestRequest) -> Any:
    return answer(using.name, await send(using, inputs))


def reach_check(probe: RestRequest) -> Checker:
    """A connection check: a token first (OAuth2), then ``probe``; 404 still proves the system answered."""

    async def check(using: Using) -> list[tuple[str, bool, str]]:
        config: RestConfig = using.config
        steps: list[tuple[str, bool, str]] = []
        if config.auth == "oauth2_client_credentials":
            try:
                TOKENS.forget((using.connection_id, config.client_id, config.scope))
                await TOKENS.token(using)
                steps.append(("get an OAuth2 token", True, "the token endpoint issued a token"))
            except ConnectorError as exc:
                return [("get an OAuth2 token", False, str(exc))]
        what = f"reach {probe.path}" if probe.path else "reach the base URL"
        try:
            response = await send(using, probe)
        except ConnectorError as exc:
            return [*steps, (what, False, str(exc))]
        ok = response.status < 400 or response.status == 404
        detail = f"answered {response.status} in {response.elapsed_ms:g} ms"
        if response.status in (401, 403):
            detail += ": the credentials were refused"
        return [*steps, (what, ok, detail)]

    return check


def _auth_is(*kinds: str) -> Any:
    return lambda config: getattr(config, "auth", None) in kinds


REST = ConnectorType(
    key="rest",
    title="REST API",
    description="Any JSON API over HTTPS, with an API key, basic, bearer or OAuth2 client-credentials auth.",
    config=RestConfig,
    secrets=(
        SecretField("api_key", "API key", _auth_is("api_key")),
        SecretField("password", "Password", _auth_is("basic")),
        SecretField("token", "Bearer token", _auth_is("bearer")),
        SecretField("client_secret", "OAuth2 client secret", _auth_is("oauth2_client_credentials")),
    ),
    capabilities={"request": Capability("request", "Call an endpoint", RestRequest, _request)},
    check=reach_check(RestRequest(method="GET")),
)
