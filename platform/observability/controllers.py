"""``GET /metrics``: this process's Prometheus metrics, for a scraper holding the metrics token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from prometheus_client.exposition import choose_encoder

from andon.platform.config.settings import Environment
from andon.platform.http.errors import AuthenticationError
from andon.platform.observability.metrics import REGISTRY

METRICS_PATH = "/metrics"


def _check_scraper(request: Request[Any, Any, Any], state: State) -> None:
    """With a token set, only its holder; without one, anyone outside production, and in production
    nobody (the address does not exist there until a token is configured)."""
    token = state.settings.observability.metrics_token.get_secret_value()
    if not token:
        if state.settings.environment is Environment.PRODUCTION:
            raise NotFoundException()  # exactly what an unknown address answers
        return
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        raise AuthenticationError("send 'Authorization: Bearer <metrics token>'")


class MetricsController(Controller):
    path = METRICS_PATH
    include_in_schema = False

    # Public to the permission guard: the metrics token, not an API key, admits a scraper.
    @get("/", opt={"public": True})
    async def metrics(self, request: Request[Any, Any, Any], state: State) -> Response[bytes]:
        """The text format a scraper asks for in ``Accept`` (Prometheus's, or OpenMetrics)."""
        _check_scraper(request, state)
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        # Litestar adds the charset of a text/* answer itself.
        media_type = content_type.replace("; charset=utf-8", "") if content_type.startswith("text/") else content_type
        return Response(encode(REGISTRY), media_type=media_type)
