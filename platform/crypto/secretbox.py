"""Encryption at rest for secrets the platform must read back (IdP client secrets, TOTP seeds).

Fernet (AES-128-CBC + HMAC-SHA256) through MultiFernet: the first key encrypts, every listed key
decrypts, so keys rotate by prepending a new one and re-encrypting at leisure.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBoxError(ValueError):
    pass


def derive_key(secret: str) -> str:
    """A Fernet key derived from an arbitrary secret string (used when no explicit keys are set)."""
    digest = hashlib.sha256(b"andon-secretbox-v1:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretBoxError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretBoxError("cannot decrypt: the key it was sealed with is not configured") from None

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()
