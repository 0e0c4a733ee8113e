"""The official Stripe SDK, configured from settings, or a clear refusal when Stripe is not set up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from andon.platform.config.settings import StripeSettings
from andon.platform.http.errors import AndonError

if TYPE_CHECKING:
    from stripe import StripeClient

# Stripe's documented limit on a meter event's identifier.
IDENTIFIER_MAX = 100


class StripeUnavailableError(AndonError):
    """Stripe is not configured here (or its extra is not installed): nothing is sent or received."""

    status_code = 503
    title = "Stripe not configured"
    type_slug = "stripe-not-configured"


def stripe_sdk() -> Any:
    try:
        import stripe
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise StripeUnavailableError(
            "the Stripe integration is not installed: install Andon with its extra, pip install 'andon[stripe]'"
        ) from None
    return stripe


@asynccontextmanager
async def connected(settings: StripeSettings) -> AsyncIterator[StripeClient]:
    """A client for Stripe's API (or the one ``api_base`` names) over httpx, for the async calls."""
    if not settings.api_key.get_secret_value():
        raise StripeUnavailableError("Stripe is not configured: set ANDON_STRIPE_API_KEY to turn the sync on")
    stripe = stripe_sdk()
    bases = {"api": settings.api_base, "meter_events": settings.api_base} if settings.api_base else None
    http = stripe.HTTPXClient()
    client: StripeClient = stripe.StripeClient(
        settings.api_key.get_secret_value(),
        base_addresses=bases,
        http_client=http,
        # Retries resend the same Idempotency-Key, so a lost answer never creates twice.
        max_network_retries=2,
    )
    try:
        yield client
    finally:
        await http.close_async()


def params(values: dict[str, Any]) -> Any:
    """The SDK types each call's parameters as its own TypedDict; Andon builds them as plain dicts."""
    return values
