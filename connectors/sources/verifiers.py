"""Proof that a delivery comes from the connection's sender: Standard Webhooks signatures (checked by
the reference ``standardwebhooks`` library) or the two schemes vendors commonly use instead.

A refusal carries a reason for the deliveries log; the sender is told only that the signature did
not verify, so probing cannot tell a wrong secret from a stale timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

STANDARD = "standard_webhooks"
SHARED_SECRET = "shared_secret_header"  # noqa: S105 - the name of a verifier, not a secret
HMAC_BODY = "hmac_sha256_body"
STANDARD_PREFIX = "whsec_"


class SignatureRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    verifier: str
    signature_header: str | None
    signature_prefix: str
    digest_encoding: str
    tolerance_seconds: int


def generate_secret(verifier: str) -> str:
    if verifier == STANDARD:
        # The form the Standard Webhooks libraries expect: whsec_ and base64 of the key bytes.
        return STANDARD_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(32)


def secret_problem(verifier: str, secret: str) -> str | None:
    """Why a secret a caller chose cannot work with the verifier (None: it can)."""
    if verifier != STANDARD:
        return None
    if not secret.startswith(STANDARD_PREFIX):
        return f"a Standard Webhooks secret starts with {STANDARD_PREFIX}"
    try:
        key = base64.b64decode(secret[len(STANDARD_PREFIX) :], validate=True)
    except ValueError:
        return "after whsec_ comes the key in base64"
    if not 24 <= len(key) <= 64:
        return "the key is 24 to 64 bytes (192 to 512 bits)"
    return None


def verify(
    config: VerifierConfig, secrets_in_force: Sequence[str], headers: Mapping[str, str], body: bytes, now: datetime
) -> None:
    """Raises ``SignatureRefused`` unless one of the secrets in force signed this delivery."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if config.verifier == STANDARD:
        _verify_standard(config, secrets_in_force, lowered, body, now)
    elif config.verifier == SHARED_SECRET:
        given = _header_value(config, lowered)
        if not any(hmac.compare_digest(given.encode(), s.encode()) for s in secrets_in_force):
            raise SignatureRefused(f"the {config.signature_header} header does not hold the secret")
    elif config.verifier == HMAC_BODY:
        given = _header_value(config, lowered).strip()
        if config.digest_encoding == "hex":
            # Hex digits are case-insensitive; vendors differ in which case they send.
            given = given.lower()
        for secret in secrets_in_force:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
            expected = digest.hex() if config.digest_encoding == "hex" else base64.b64encode(digest).decode()
            if hmac.compare_digest(given.encode(), expected.encode()):
                return
        raise SignatureRefused("the HMAC-SHA256 of the body does not match")
    else:  # pragma: no cover - the schema admits no other verifier
        raise SignatureRefused(f"unknown verifier {config.verifier}")


def _header_value(config: VerifierConfig, headers: Mapping[str, str]) -> str:
    name = (config.signature_header or "").lower()
    value = headers.get(name)
    if not value:
        raise SignatureRefused(f"no {config.signature_header} header")
    if not value.startswith(config.signature_prefix):
        raise SignatureRefused(f"the {config.signature_header} header does not start with {config.signature_prefix!r}")
    return value[len(config.signature_prefix) :]


def _verify_standard(
    config: VerifierConfig, secrets_in_force: Sequence[str], headers: Mapping[str, str], body: bytes, now: datetime
) -> None:
    if not (headers.get("webhook-id") and headers.get("webhook-timestamp") and headers.get("webhook-signature")):
        raise SignatureRefused("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        sent = float(headers["webhook-timestamp"])
    except ValueError:
        raise SignatureRefused("webhook-timestamp is not a number of seconds") from None
    # The library keeps its own, fixed 5-minute window; the connection's may be narrower.
    if not math.isfinite(sent) or abs(now.timestamp() - sent) > config.tolerance_seconds:
        raise SignatureRefused(f"webhook-timestamp is more than {config.tolerance_seconds} s from now")
    for secret in secrets_in_force:
        try:
            Webhook(secret).verify(body, dict(headers), json_parse=False)
        except (WebhookVerificationError, ValueError):
            # ValueError: a malformed signature list or a body that is not UTF-8 (the library
            # signs text); neither verifies with any secret.
            continue
        return
    raise SignatureRefused("no webhook-signature matches a secret in force")


def sign_standard(secret: str, msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The headers Andon sends with an outbound webhook, per the Standard Webhooks specification.

    Written from the specification rather than with the library, so the tests that verify these
    headers with the library check Andon's reading of the specification."""
    key = base64.b64decode(secret.removeprefix(STANDARD_PREFIX))
    seconds = str(math.floor(timestamp.astimezone(UTC).timestamp()))
    signed = msg_id.encode() + b"." + seconds.encode() + b"." + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": seconds, "webhook-signature": f"v1,{signature}"}
