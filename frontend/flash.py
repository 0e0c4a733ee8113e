"""One-shot notices after a form post ("Saved", "Invitation sent"), carried on the redirect.

The notice rides in the query string, signed with the platform's secret, so a crafted link cannot
make a partner's portal say something the platform never said; nothing is kept on the server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import urlencode

from litestar.response import Redirect

from andon.platform.config.settings import Settings

MAX_LENGTH = 300


def _key(settings: Settings) -> bytes:
    return hmac.new(settings.security.secret_key.get_secret_value().encode(), b"andon.flash", hashlib.sha256).digest()


def _sign(settings: Settings, text: bytes) -> str:
    digest = hmac.new(_key(settings), text, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def flash_token(settings: Settings, message: str) -> str:
    text = message[:MAX_LENGTH].encode()
    return f"{base64.urlsafe_b64encode(text).decode().rstrip('=')}.{_sign(settings, text)}"


def read_flash(settings: Settings, token: str | None) -> str | None:
    """The notice a token carries, or None when it is absent, malformed or not ours."""
    if not token or token.count(".") != 1:
        return None
    body, signature = token.split(".")
    try:
        text = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(signature, _sign(settings, text)):
        return None
    return text.decode(errors="replace")


def redirect_with_notice(settings: Settings, path: str, message: str) -> Redirect:
    """POST-redirect-GET to ``path`` (a local path, maybe with a query), showing ``message`` once."""
    path, hash_, fragment = path.partition("#")
    joiner = "&" if "?" in path else "?"
    query = urlencode({"flash": flash_token(settings, message)})
    return Redirect(f"{path}{joiner}{query}{hash_}{fragment}", status_code=303)
