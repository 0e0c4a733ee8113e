"""Time-based one-time passwords (RFC 6238) as a second factor, with replay protection."""

from __future__ import annotations

import time

import pyotp

DIGITS = 6
PERIOD = 30


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, email: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(name=email, issuer_name=issuer)


def current_code(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).at(at if at is not None else time.time())


def verify(secret: str, code: str, *, last_step: int | None, at: float | None = None) -> int | None:
    """The time step the code belongs to (one step of clock drift allowed), or None.

    A step at or before ``last_step`` is refused: each code works once.
    """
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != DIGITS:
        return None
    now = at if at is not None else time.time()
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    for drift in (0, -1, 1):
        moment = now + drift * PERIOD
        step = int(moment // PERIOD)
        if totp.verify(code, for_time=moment, valid_window=0):
            if last_step is not None and step <= last_step:
                return None
            return step
    return None
