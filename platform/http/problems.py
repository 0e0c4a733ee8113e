"""Every error leaves the API as ``application/problem+json`` (RFC 9457), never as a stack trace."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap

from andon.platform.http.errors import AndonError

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://andon.dev/problems/"

log = structlog.get_logger("andon.http")


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    phrase = HTTPStatus(status).phrase
    if _wants_page(request) and "brand" in request.scope.get("state", {}):
        return _error_page(request, status, detail)
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _error_page(request: Request[Any, Any, Any], status: int, detail: str) -> Response[Any]:
    """A person at a page gets a page in the brand of the portal they are on, never JSON."""
    return Template(
        template_name="error.html",
        context={
            "status": status,
            "detail": detail,
            "request_id": request.scope.get("state", {}).get("request_id"),
            "back": _same_site_referrer(request),
        },
        status_code=status,
    )


def _same_site_referrer(request: Request[Any, Any, Any]) -> str | None:
    """The page a refused form was sent from, as a local path, when it was on this same host."""
    referrer = urlsplit(request.headers.get("referer", ""))
    if referrer.netloc != request.headers.get("host") or not referrer.path.startswith("/"):
        return None
    return referrer.path


def _validation_errors(extra: Any) -> list[dict[str, Any]]:
    """Litestar reports validation failures as ``[{"message", "key", "source"}]``; name the fields."""
    errors: list[dict[str, Any]] = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict):
            errors.append(
                {
                    "field": item.get("key") or None,
                    "source": item.get("source"),
                    "message": item.get("message", "invalid value"),
                }
            )
    return errors


def _handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = _validation_errors(exc.extra)
    detail = (
        "The request is not valid: "
        + "; ".join(f"{e['field']}: {e['message']}" if e["field"] else str(e["message"]) for e in errors)
        if errors
        else (exc.detail or "The request is not valid")
    )
    return problem_response(request, 422 if errors else 400, detail, slug="validation-failed", extra={"errors": errors})


def _handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    detail = exc.detail or HTTPStatus(status).phrase
    if status == 413:
        limit = request.app.state.settings.security.max_body_bytes
        detail = f"The request is larger than this address accepts (at most {limit / 1024 / 1024:g} MB)"
    extra = exc.extra if isinstance(exc.extra, dict) else None
    return problem_response(request, status, detail, extra=extra, headers=exc.headers)


def _handle_domain(request: Request[Any, Any, Any], exc: AndonError) -> Response[Any]:
    if exc.status_code == 401 and _wants_page(request):
        # A person at a page is sent to sign in and brought back; machines get problem+json.
        return Redirect(f"/login?next={quote(request.url.path)}", status_code=303)
    return problem_response(
        request,
        exc.status_code,
        exc.detail,
        slug=exc.type_slug,
        title=exc.title,
        extra=exc.extra,
        headers=exc.headers,
    )


def _wants_page(request: Request[Any, Any, Any]) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(request, 500, "An unexpected error occurred; it has been logged with this request's id.")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: _handle_validation,
    HTTPException: _handle_http,
    AndonError: _handle_domain,
    Exception: _handle_unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "problem_response"]
