"""Domain errors carry their HTTP status; the API renders every one as RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any


class AndonError(Exception):
    status_code = 400
    title = "Bad request"
    type_slug = "bad-request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class NotFoundError(AndonError):
    """Missing, or owned by someone the caller may not know exists: the two look the same."""

    status_code = 404
    title = "Not found"
    type_slug = "not-found"


class ConflictError(AndonError):
    status_code = 409
    title = "Conflict"
    type_slug = "conflict"


class ValidationFailedError(AndonError):
    status_code = 422
    title = "Validation failed"
    type_slug = "validation-failed"


def field_error(field: str, message: str) -> ValidationFailedError:
    """A 422 about one field, in the shape every API error list uses."""
    return ValidationFailedError(f"{field}: {message}", extra={"errors": [{"field": field, "message": message}]})


class PermissionDeniedError(AndonError):
    status_code = 403
    title = "Forbidden"
    type_slug = "forbidden"


class AuthenticationError(AndonError):
    status_code = 401
    title = "Unauthorized"
    type_slug = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="andon"'}


class UnsupportedMediaTypeError(AndonError):
    status_code = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"


class TooManyRequestsError(AndonError):
    """429: the caller sends faster than its limit; ``Retry-After`` says when the next request fits."""

    status_code = 429
    title = "Too many requests"
    type_slug = "rate-limited"

    def __init__(self, detail: str, *, retry_after: int, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra={"retry_after": retry_after, **(extra or {})})
        self.headers = {"Retry-After": str(retry_after)}
