"""ASGI entry point for servers started by import string (``andon serve`` workers)."""

from __future__ import annotations

from andon.platform.http.app import create_app

app = create_app()
