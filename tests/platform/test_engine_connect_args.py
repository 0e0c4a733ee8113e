"""Which PostgreSQL connections negotiate TLS: every remote one, and a local one only on request."""

from __future__ import annotations

import pytest

from andon.platform.db.engine import postgres_connect_args


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+asyncpg://andon@127.0.0.1:5432/andon", {"ssl": False}),
        ("postgresql+asyncpg://andon@localhost/andon", {"ssl": False}),
        ("postgresql+asyncpg://andon@[::1]/andon", {"ssl": False}),
        ("postgresql+asyncpg://andon@db.internal:5432/andon", {}),
        ("postgresql+asyncpg://andon@10.0.0.5/andon", {}),
        ("postgresql+asyncpg://andon@127.0.0.1/andon?ssl=require", {}),
        ("postgresql+asyncpg://andon@localhost/andon?sslmode=verify-full", {}),
    ],
)
def test_tls_is_skipped_only_for_a_local_server_that_did_not_ask_for_it(url: str, expected: dict[str, object]) -> None:
    assert postgres_connect_args(url) == expected
