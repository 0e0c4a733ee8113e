"""API key format: ``andon_<prefix>_<secret>``. The prefix is shown in lists; the secret only once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_SCHEME = "andon"
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no look-alikes (l, o, 0, 1)


@dataclass(frozen=True, slots=True)
class MintedKey:
    prefix: str
    plaintext: str
    key_hash: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def mint_key() -> MintedKey:
    prefix = f"{KEY_SCHEME}_" + "".join(secrets.choice(_ALPHABET) for _ in range(10))
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
    return MintedKey(prefix=prefix, plaintext=plaintext, key_hash=hash_key(plaintext))


def split_key(candidate: str) -> str | None:
    """The prefix of a well-formed key, or None; lookups never touch the database for junk."""
    parts = candidate.split("_")
    if len(parts) < 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 10:
        return None
    return f"{parts[0]}_{parts[1]}"


def matches(plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), stored_hash)
