"""Encryption at rest for secrets the platform must read back (connection secrets, IdP client secrets,
TOTP seeds): envelope encryption under a keyring of key-encryption keys (KEKs), each with an id.

Each value gets its own random 256-bit data key; the value is sealed with AES-256-GCM under that data
key, and the data key is wrapped with AES-256-GCM under the active KEK. The token carries the KEK's
id, so a reader knows which key opens it and ``andon secrets rotate`` knows which values to move:
rotation re-wraps the data key under the new KEK (the sealed value itself is not touched) and can run
while the application serves, since every configured key still opens what it wrapped.

    andon:v2:<kek id>:<wrapped data key>:<nonce + sealed value>      (base64url, no padding)

Keys are configured newest first (``ANDON_SECURITY_ENCRYPTION_KEYS=k2:<key>,k1:<key>``); the first
wraps, all unwrap. A key without an id gets one derived from it. Values sealed before envelopes
(Fernet tokens) are still opened, and rotation converts them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "andon:v2:"
LEGACY = "legacy"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Additional data binds each ciphertext to its role, so a wrapped key cannot pass for a value.
_DEK_AAD = b"andon-secretbox-v2:data-key:"
_VALUE_AAD = b"andon-secretbox-v2:value"
_NONCE = 12


class SecretBoxError(ValueError):
    pass


def derive_key(secret: str) -> str:
    """A key derived from an arbitrary secret string (used when no explicit keys are set)."""
    digest = hashlib.sha256(b"andon-secretbox-v1:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def generate_key() -> str:
    """A new keyring entry, ``<id>:<key>``, for ``ANDON_SECURITY_ENCRYPTION_KEYS``."""
    return f"k{secrets.token_hex(4)}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    material: bytes  # 32 bytes
    legacy: Fernet  # opens values sealed before envelopes with this key


def _parse(entry: str) -> _Key:
    kid, sep, encoded = entry.strip().rpartition(":")
    try:
        material = base64.urlsafe_b64decode(encoded.encode())
    except ValueError:
        material = b""
    if len(material) != 32:
        raise SecretBoxError("an encryption key must be 32 bytes, base64url-encoded (andon secrets generate-key)")
    if not sep:
        kid = "d" + hashlib.sha256(b"andon-kid:" + material).hexdigest()[:8]
    elif not _KID.match(kid):
        raise SecretBoxError(f"a key id must be 1-32 letters, digits, '-' or '_' (got {kid[:40]!r})")
    return _Key(kid, material, Fernet(base64.urlsafe_b64encode(material)))


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretBoxError("at least one encryption key is required")
        parsed = [_parse(k) for k in keys]
        self._keys = {k.kid: k for k in parsed}
        if len(self._keys) != len(parsed):
            raise SecretBoxError("two encryption keys have the same id")
        self.active = parsed[0].kid
        self._legacy = MultiFernet([k.legacy for k in parsed])

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plaintext: str) -> str:
        data_key = AESGCM.generate_key(bit_length=256)
        value_nonce = os.urandom(_NONCE)
        sealed = AESGCM(data_key).encrypt(value_nonce, plaintext.encode(), _VALUE_AAD)
        return self._envelope(self.active, data_key, value_nonce + sealed)

    def open(self, token: str) -> str:
        if not token.startswith(PREFIX):
            try:
                return self._legacy.decrypt(token.encode()).decode()
            except InvalidToken:
                raise SecretBoxError("cannot decrypt: the key it was sealed with is not configured") from None
        kid, data_key, sealed = self._unwrap(token)
        try:
            return AESGCM(data_key).decrypt(sealed[:_NONCE], sealed[_NONCE:], _VALUE_AAD).decode()
        except InvalidTag:
            raise SecretBoxError(f"cannot decrypt: the value sealed under key {kid} was altered") from None

    def key_id(self, token: str) -> str:
        """The id of the key that wraps ``token`` (``legacy`` for a value sealed before envelopes)."""
        if not token.startswith(PREFIX):
            return LEGACY
        return token[len(PREFIX) :].split(":", 1)[0]

    def rotate(self, token: str) -> str:
        """``token`` wrapped under the active key: the same token when it already is."""
        if not token.startswith(PREFIX):
            return self.seal(self.open(token))
        kid, data_key, sealed = self._unwrap(token)
        if kid == self.active:
            return token
        return self._envelope(self.active, data_key, sealed)

    def _envelope(self, kid: str, data_key: bytes, sealed: bytes) -> str:
        key_nonce = os.urandom(_NONCE)
        wrapped = AESGCM(self._keys[kid].material).encrypt(key_nonce, data_key, _DEK_AAD + kid.encode())
        return f"{PREFIX}{kid}:{_b64(key_nonce + wrapped)}:{_b64(sealed)}"

    def _unwrap(self, token: str) -> tuple[str, bytes, bytes]:
        try:
            kid, wrapped_text, sealed_text = token[len(PREFIX) :].split(":")
            wrapped, sealed = _unb64(wrapped_text), _unb64(sealed_text)
        except ValueError:
            raise SecretBoxError("cannot decrypt: not a sealed value") from None
        key = self._keys.get(kid)
        if key is None:
            raise SecretBoxError(f"cannot decrypt: key {kid} is not configured") from None
        try:
            data_key = AESGCM(key.material).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _DEK_AAD + kid.encode())
        except InvalidTag:
            raise SecretBoxError(f"cannot decrypt: key {kid} does not open this value") from None
        return kid, data_key, sealed
