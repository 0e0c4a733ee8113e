"""OpenID Connect relying party: discovery, the authorization-code + PKCE flow (Authlib), and ID token
validation against the issuer's JWKS (joserfc), with the keys cached and re-read on rotation."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import authlib.deprecate  # noqa: F401 - first, so its own "always" filter is in place before ours
import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

with warnings.catch_warnings():
    # Authlib 1.9 announces a future move of its httpx integration; the API used here is unchanged.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

# Asymmetric algorithms only: "none" and HMAC (which would make the client secret a signing key) never.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_LEEWAY_SECONDS = 60
CACHE_SECONDS = 600
HTTP_TIMEOUT = httpx.Timeout(10.0)


class OidcError(Exception):
    """Anything wrong in discovery, the code exchange or the ID token; the message is safe to show."""


@dataclass
class _Cached:
    value: dict[str, Any]
    fetched: float


@dataclass
class OidcMetadataCache:
    """Per-process cache of discovery documents and key sets, keyed by issuer."""

    discovery: dict[str, _Cached] = field(default_factory=dict)
    jwks: dict[str, _Cached] = field(default_factory=dict)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcError(f"could not reach the identity provider ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise OidcError(f"the identity provider answered {response.status_code} for {url}")
        try:
            data = response.json()
        except ValueError:
            raise OidcError(f"the identity provider sent invalid JSON at {url}") from None
        if not isinstance(data, dict):
            raise OidcError(f"the identity provider sent an unexpected document at {url}")
        return data

    async def metadata(self, issuer: str) -> dict[str, Any]:
        cached = self.discovery.get(issuer)
        if cached and time.monotonic() - cached.fetched < CACHE_SECONDS:
            return cached.value
        doc = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if doc.get("issuer") != issuer:
            raise OidcError("the provider's discovery document names a different issuer")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise OidcError(f"the provider's discovery document has no {key}")
        self.discovery[issuer] = _Cached(doc, time.monotonic())
        return doc

    async def key_set(self, issuer: str, *, refresh: bool = False) -> KeySet:
        cached = self.jwks.get(issuer)
        if refresh or not cached or time.monotonic() - cached.fetched >= CACHE_SECONDS:
            meta = await self.metadata(issuer)
            cached = _Cached(await self._get_json(meta["jwks_uri"]), time.monotonic())
            self.jwks[issuer] = cached
        try:
            return KeySet.import_key_set(cached.value)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError):
            raise OidcError("the provider's key set is not valid") from None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str


def _client(provider: ProviderConfig, redirect_uri: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        scope=provider.scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT,
    )


async def authorization_url(
    cache: OidcMetadataCache,
    provider: ProviderConfig,
    *,
    redirect_uri: str,
    state: str,
    nonce: str,
    code_verifier: str,
    login_hint: str | None = None,
) -> str:
    meta = await cache.metadata(provider.issuer)
    extra = {"nonce": nonce}
    if login_hint:
        extra["login_hint"] = login_hint
    async with _client(provider, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            meta["authorization_endpoint"], state=state, code_verifier=code_verifier, **extra
        )
    return str(url)


async def exchange_code(
    cache: OidcMetadataCache, provider: ProviderConfig, *, redirect_uri: str, code: str, code_verifier: str
) -> dict[str, Any]:
    meta = await cache.metadata(provider.issuer)
    async with _client(provider, redirect_uri) as client:
        try:
            token = await client.fetch_token(meta["token_endpoint"], code=code, code_verifier=code_verifier)
        except Exception as exc:  # Authlib raises its own error types for OAuth error responses
            raise OidcError(f"the provider refused the authorization code ({_oauth_error(exc)})") from None
    if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
        raise OidcError("the provider returned no ID token")
    return dict(token)


def _oauth_error(exc: Exception) -> str:
    return str(getattr(exc, "error", "") or type(exc).__name__)


async def _verified_claims(cache: OidcMetadataCache, issuer: str, token: str, what: str) -> dict[str, Any]:
    """The claims of a JWT whose signature checks out against the issuer's keys (asymmetric only)."""
    try:
        header = extract_compact(token.encode()).headers()
    except (JoseError, ValueError):
        raise OidcError(f"the {what} is malformed") from None
    algorithm = header.get("alg")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise OidcError(f"the {what} uses a refused algorithm ({algorithm})")
    key_set = await cache.key_set(issuer)
    kid = header.get("kid")
    if kid and all(k.kid != kid for k in key_set.keys):
        key_set = await cache.key_set(issuer, refresh=True)  # the provider rotated its keys
    try:
        return dict(jwt.decode(token, key_set, algorithms=[algorithm]).claims)
    except JoseError:
        raise OidcError(f"the {what}'s signature is not valid") from None


def _validate(claims: dict[str, Any], what: str, **expected: jwt.ClaimsOption) -> None:
    options: dict[str, Any] = {"exp": {"essential": True}, **expected}
    registry = jwt.JWTClaimsRegistry(leeway=CLOCK_LEEWAY_SECONDS, **options)
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise OidcError(f"the {what} was refused: {_claim_reason(exc)}") from None


async def validate_id_token(
    cache: OidcMetadataCache, provider: ProviderConfig, id_token: str, *, nonce: str
) -> dict[str, Any]:
    """Signature (issuer's JWKS, asymmetric algorithms only), iss, aud/azp, exp/iat/nbf and nonce."""
    claims = await _verified_claims(cache, provider.issuer, id_token, "ID token")
    _validate(
        claims,
        "ID token",
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        iat={"essential": True},
        sub={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != provider.client_id:
        raise OidcError("the ID token was refused: it was issued to another party (azp)")
    return claims


def unverified_target(token: str) -> tuple[str, list[str]] | None:
    """Which provider a bearer JWT claims to come from and which audiences it names, to pick the
    provider whose keys must then verify it (nothing here is trusted until that succeeds)."""
    try:
        claims = json.loads(extract_compact(token.encode()).payload)
    except (JoseError, ValueError, AttributeError):
        return None
    issuer, audience = claims.get("iss"), claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not isinstance(issuer, str):
        return None
    return issuer, [a for a in audiences if isinstance(a, str)]


async def validate_access_token(cache: OidcMetadataCache, issuer: str, token: str, *, audience: str) -> dict[str, Any]:
    """A machine's client-credential JWT: signature, iss, aud (this API) and exp."""
    claims = await _verified_claims(cache, issuer, token, "access token")
    _validate(
        claims,
        "access token",
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
    )
    return claims


def _claim_reason(exc: JoseError) -> str:
    claim = getattr(exc, "claim", None)
    name = type(exc).__name__
    if name == "ExpiredTokenError":
        return "it has expired"
    if claim:
        return f"invalid '{claim}' claim"
    return exc.description or name


async def end_session_url(
    cache: OidcMetadataCache,
    issuer: str,
    *,
    id_token_hint: str | None,
    post_logout_redirect_uri: str,
    client_id: str,
) -> str | None:
    meta = await cache.metadata(issuer)
    endpoint = meta.get("end_session_endpoint")
    if not isinstance(endpoint, str):
        return None
    params = {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": client_id}
    if id_token_hint:
        params["id_token_hint"] = id_token_hint
    return str(httpx.URL(endpoint, params=params))
