"""How a call to a customer's system failed, in the engine's error kinds (retried or not)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

from andon.connectors.egress import EgressError, EgressResponse
from andon.platform.engine.capabilities import FAILED, FORBIDDEN, INVALID, NOT_FOUND, UNAVAILABLE, CapabilityError

__all__ = ["ConnectorError", "from_egress", "from_status", "retry_after"]


class ConnectorError(CapabilityError):
    """A failure with its kind, and how long the system asked us to wait (a 429's Retry-After)."""

    def __init__(self, message: str, kind: str = FAILED, *, retry_after: float | None = None) -> None:
        super().__init__(message, kind, retry_after=retry_after)


def from_egress(exc: EgressError) -> ConnectorError:
    # A refused address or an oversized answer will not change by retrying; the rest may.
    kind = INVALID if exc.failure in ("refused", "too_large") else UNAVAILABLE
    return ConnectorError(str(exc), kind)


def retry_after(response: EgressResponse) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number, or an HTTP date); None when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():  # delay-seconds is digits only (RFC 9110), so no "inf" or "nan" gets through
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; an obsolete form may parse without a zone
        return None
    return max(0.0, round(when.timestamp() - time.time(), 3))


def from_status(system: str, response: EgressResponse) -> ConnectorError | None:
    """None for a success; else the failure an answer's status means."""
    status = response.status
    if 200 <= status < 300:
        return None
    if status == 429:
        wait = retry_after(response)
        hint = f"; it asks to wait {wait:g} s" if wait is not None else ""
        return ConnectorError(f"{system} answered 429 (too many requests){hint}", FAILED, retry_after=wait)
    if status in (408, 425) or status >= 500:
        kind = UNAVAILABLE if status >= 502 else FAILED
        return ConnectorError(f"{system} answered {status}: {response.snippet()}", kind)
    if status in (401, 403):
        return ConnectorError(f"{system} answered {status}: check the connection's credentials", FORBIDDEN)
    if status == 404:
        return ConnectorError(f"{system} answered 404: {response.snippet()}", NOT_FOUND)
    if 300 <= status < 400:
        return ConnectorError(f"{system} answered {status} (a redirect); redirects are not followed", INVALID)
    return ConnectorError(f"{system} answered {status}: {response.snippet()}", INVALID)
