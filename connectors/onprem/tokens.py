"""The token an ``andon relay`` agent presents: it names its connection and proves it holds the secret.

``relay_<connection id, 32 hex>_<43 random url-safe characters>``. The connection id lets the server
find the one connection to check against (as a webhook's path does) instead of trying every
customer's; the whole token is what is sealed and compared, so the id part proves nothing alone.
"""

from __future__ import annotations

import secrets
import uuid

SCHEME = "relay"


def issue_token(connection_id: uuid.UUID) -> str:
    return f"{SCHEME}_{connection_id.hex}_{secrets.token_urlsafe(32)}"


def connection_of(token: str) -> uuid.UUID | None:
    """The connection a token names, or None for anything that is not shaped like a relay token."""
    scheme, _, rest = token.partition("_")
    hexid, _, secret = rest.partition("_")
    if scheme != SCHEME or len(hexid) != 32 or len(secret) < 32:
        return None
    try:
        return uuid.UUID(hex=hexid)
    except ValueError:
        return None
