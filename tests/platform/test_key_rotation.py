"""Envelope encryption of stored secrets, key ids, and ``andon secrets rotate`` across every tenant."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.cli.main import cli
from andon.platform.config.settings import Settings
from andon.platform.crypto.rotation import rotate_all
from andon.platform.crypto.sealed import sealed_columns
from andon.platform.crypto.secretbox import LEGACY, PREFIX, SecretBox, SecretBoxError, generate_key
from andon.platform.db.engine import create_engine
from andon.platform.db.models_registry import load_all_models
from tests.tenants.factories import World, auth

ROOT = Path(__file__).resolve().parents[2]
SECRET_A = "sk_live_tenantA_9f8e7d6c5b4a"
SECRET_B = "sk_live_tenantB_1a2b3c4d5e6f"


# --- the box --------------------------------------------------------------------------------------------


def test_values_are_sealed_in_envelopes_that_name_their_key() -> None:
    key = generate_key()
    box = SecretBox([key])
    token = box.seal("hunter2")
    assert token.startswith(PREFIX + key.split(":")[0] + ":")
    assert "hunter2" not in token and box.open(token) == "hunter2"
    # Each value has its own data key and nonces: sealing twice never gives the same token.
    assert box.seal("hunter2") != token
    assert box.key_id(token) == box.active == key.split(":")[0]


def test_an_altered_or_foreign_token_is_refused_with_a_clear_error() -> None:
    box = SecretBox([generate_key()])
    token = box.seal("hunter2")
    head, wrapped, sealed = token.rsplit(":", 2)
    raw = bytearray(base64.urlsafe_b64decode(sealed + "=="))
    raw[-1] ^= 1
    altered = f"{head}:{wrapped}:{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"
    with pytest.raises(SecretBoxError, match="altered"):
        box.open(altered)
    other = SecretBox([generate_key()])
    with pytest.raises(SecretBoxError, match=f"key {box.active} is not configured"):
        other.open(token)
    with pytest.raises(SecretBoxError, match="not a sealed value"):
        box.open(PREFIX + "x:y")


def test_keys_are_checked_when_configured() -> None:
    with pytest.raises(SecretBoxError, match="32 bytes"):
        SecretBox(["k1:short"])
    with pytest.raises(SecretBoxError, match="key id"):
        SecretBox(["bad id!:" + generate_key().split(":")[1]])
    same = generate_key().split(":")[1]
    with pytest.raises(SecretBoxError, match="same id"):
        SecretBox([f"k1:{same}", f"k1:{generate_key().split(':')[1]}"])
    # A key without an id (the form used before key ids) gets a stable one derived from it.
    assert SecretBox([same]).active == SecretBox([same]).active != SecretBox([generate_key()]).active


def test_rotation_rewraps_the_data_key_and_converts_values_sealed_before_envelopes() -> None:
    old, new = generate_key(), generate_key()
    before = SecretBox([old])
    token = before.seal("hunter2")
    both = SecretBox([new, old])
    rotated = both.rotate(token)
    assert both.key_id(rotated) == both.active and rotated.rsplit(":", 1)[1] == token.rsplit(":", 1)[1]
    assert SecretBox([new]).open(rotated) == "hunter2"
    assert both.rotate(rotated) == rotated  # already under the newest key: untouched
    # A Fernet token from before envelopes, sealed with the same key material, still opens and converts.
    legacy = Fernet(base64.urlsafe_b64encode(base64.urlsafe_b64decode(old.split(":")[1]))).encrypt(b"totp-seed")
    assert both.key_id(legacy.decode()) == LEGACY and both.open(legacy.decode()) == "totp-seed"
    assert SecretBox([new]).open(both.rotate(legacy.decode())) == "totp-seed"


# --- which columns ----------------------------------------------------------------------------------------


def test_every_sealed_column_is_marked_and_opened_to_the_rotation_scope() -> None:
    metadata = load_all_models()
    named = {f"{t.name}.{c.name}" for t in metadata.tables.values() for c in t.columns if "sealed" in c.name}
    marked = {f"{c.table.name}.{c.name}" for c, _ in sealed_columns(metadata)}
    assert named == marked, "a column holding sealed values must carry info=SEALED or SEALED_MAP"
    spec = importlib.util.spec_from_file_location(
        "rotation_migration", next(ROOT.glob("migrations/versions/*_key_rotation.py"))
    )
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert set(migration.TABLES) >= {c.table.name for c, _ in sealed_columns(metadata)}


# --- across tenants ---------------------------------------------------------------------------------------


async def _sealed_values(settings: Settings) -> dict[str, list[Any]]:
    """Every sealed value as stored, read as the schema owner (past row-level security)."""
    engine = create_engine(settings.database, url=settings.database.owner_url)
    found: dict[str, list[Any]] = {}
    try:
        async with engine.connect() as conn:
            for column, _ in sealed_columns(load_all_models()):
                rows = await conn.execute(
                    text(f"SELECT {column.name} FROM {column.table.name} WHERE {column.name} IS NOT NULL")  # noqa: S608
                )
                found[f"{column.table.name}.{column.name}"] = [r[0] for r in rows]
    finally:
        await engine.dispose()
    return found


def _tokens(values: dict[str, list[Any]]) -> list[str]:
    tokens: list[str] = []
    for column_values in values.values():
        for value in column_values:
            if isinstance(value, str) and value.startswith("{"):  # a JSON map as text (SQLite)
                value = json.loads(value)
            tokens.extend(value.values() if isinstance(value, dict) else [value])
    return tokens


async def _outbound(api: httpx.AsyncClient, tenant: Any, secret: str) -> None:
    r = await api.post(
        f"/api/v1/customers/{tenant.customer_id}/outbound-connections/",
        headers=auth(tenant.key),
        json={
            "key": "crm",
            "name": "CRM",
            "type": "rest",
            "config": {"base_url": "https://crm.example.com/api", "auth": "api_key"},
            "secrets": {"api_key": secret},
        },
    )
    assert r.status_code == 201, r.text


@pytest.mark.anyio
async def test_rotate_rewraps_every_tenants_secrets_and_the_old_key_can_then_go(
    api: httpx.AsyncClient, world: World, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _outbound(api, world.a.customer, SECRET_A)
    await _outbound(api, world.b.customer, SECRET_B)
    r = await api.post(
        f"/api/v1/customers/{world.a.customer.customer_id}/connections/",
        headers=auth(world.a.customer.key),
        json={"name": "Line 3 alarms", "kind": "webhook"},
    )
    assert r.status_code == 201, r.text
    old_keys = settings.encryption_keys()
    before = _tokens(await _sealed_values(settings))
    assert len(before) == 3
    plain = sorted(SecretBox(old_keys).open(t) for t in before)
    assert SECRET_A in plain and SECRET_B in plain

    new = generate_key()
    box = SecretBox([new, *old_keys])
    # Counting first changes nothing.
    counted = await rotate_all(sessionmaker, box, load_all_models(), dry_run=True, batch=1)
    assert sum(r.rewrapped for r in counted) == 3
    assert _tokens(await _sealed_values(settings)) == before

    # The app's own role, under row-level security, in pages of one row: every tenant's rows are reached.
    reports = await rotate_all(sessionmaker, box, load_all_models(), batch=1)
    by_column = {r.column: r for r in reports}
    assert by_column["outbound_connections.secrets_sealed"].rewrapped == 2
    assert by_column["source_connections.secret_sealed"].rewrapped == 1
    assert not any(r.unreadable for r in reports)
    after = _tokens(await _sealed_values(settings))
    assert all(box.key_id(t) == box.active for t in after)
    assert sorted(SecretBox([new]).open(t) for t in after) == plain

    again = await rotate_all(sessionmaker, box, load_all_models())
    assert sum(r.rewrapped for r in again) == 0


@pytest.mark.anyio
async def test_the_command_reports_counts_by_key_and_values_it_cannot_open(
    api: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    # Sealed by the app with its keys; the command is given only a new key, which cannot open it.
    await _outbound(api, world.a.customer, SECRET_A)
    key = generate_key()
    env = {"ANDON_DATABASE_URL": settings.database.url, "ANDON_SECURITY_ENCRYPTION_KEYS": key}
    runner = CliRunner()

    def invoke(*args: str, **extra: str) -> Result:
        # The command runs its own event loop: in a thread, away from the test's.
        return runner.invoke(cli, list(args), env={**env, **extra})

    status = await anyio.to_thread.run_sync(invoke, "secrets", "status")
    assert status.exit_code == 1, status.output
    assert f"active key: {key.split(':')[0]}" in status.output
    assert "outbound_connections.secrets_sealed: 1 values in 1 rows" in status.output
    assert "CANNOT OPEN outbound_connections.secrets_sealed" in status.output and "is not configured" in status.output
    assert SECRET_A not in status.output
    bad = await anyio.to_thread.run_sync(lambda: invoke("secrets", "rotate", ANDON_SECURITY_ENCRYPTION_KEYS="k1:nope"))
    assert bad.exit_code == 2 and "32 bytes" in bad.output
    made = await anyio.to_thread.run_sync(invoke, "secrets", "generate-key")
    assert made.exit_code == 0 and SecretBox([made.output.strip()]).active == made.output.split(":")[0]
