"""ID token checks one by one: each forged or stale token is refused with a clear reason. The issuer's
discovery document and keys are placed in the cache, so no network is involved."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from andon.platform.identity.oidc import OidcError, OidcMetadataCache, ProviderConfig, _Cached, validate_id_token

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"
CLIENT = "andon-web"
NONCE = "n-0S6_WzA2Mj"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
PROVIDER = ProviderConfig(ISSUER, CLIENT, "client-secret-value", "openid email")


def _cache() -> OidcMetadataCache:
    cache = OidcMetadataCache()
    now = time.monotonic()
    meta = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/jwks",
    }
    cache.discovery[ISSUER] = _Cached(meta, now)
    cache.jwks[ISSUER] = _Cached({"keys": [KEY.as_dict(private=False)]}, now)
    return cache


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "u-1",
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
        "email": "ada@example.com",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: Any = KEY, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": "k1"}, claims, key)


async def test_a_good_token_passes() -> None:
    claims = await validate_id_token(_cache(), PROVIDER, _sign(_claims()), nonce=NONCE)
    assert claims["email"] == "ada@example.com"


@pytest.mark.parametrize(
    ("token_factory", "reason"),
    [
        (lambda: _sign(_claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)), "it has expired"),
        (lambda: _sign(_claims(iss="https://evil.example")), "invalid 'iss' claim"),
        (lambda: _sign(_claims(aud="someone-else")), "invalid 'aud' claim"),
        (lambda: _sign(_claims(nonce="replayed")), "invalid 'nonce' claim"),
        (lambda: _sign(_claims(nonce=None)), "'nonce'"),
        (lambda: _sign(_claims(aud=[CLIENT, "other"], azp="other")), "issued to another party"),
        (lambda: _sign(_claims(), key=OTHER_KEY), "signature is not valid"),
        (lambda: _tamper(_sign(_claims())), "signature is not valid"),
        (lambda: _unsigned(_claims()), "refused algorithm (none)"),
        (
            lambda: _sign(_claims(), key=OctKey.import_key(b"client-secret-value" * 2), alg="HS256"),
            "refused algorithm (HS256)",
        ),
        (lambda: "not.a.jwt", "malformed"),
    ],
    ids=[
        "expired",
        "other-issuer",
        "other-audience",
        "wrong-nonce",
        "no-nonce",
        "azp",
        "wrong-key",
        "tampered",
        "alg-none",
        "hs256-with-client-secret",
        "garbage",
    ],
)
async def test_bad_tokens_are_refused_with_a_reason(token_factory: Any, reason: str) -> None:
    with pytest.raises(OidcError) as refused:
        await validate_id_token(_cache(), PROVIDER, token_factory(), nonce=NONCE)
    assert reason in str(refused.value)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any]) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["email"] = "admin@example.com"
    return f"{header}.{_b64(forged)}.{signature}"
