"""``andon dev``: SQLite in a data directory, migrations, the demo, and the server, in one process."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import click
import uvicorn
from pydantic import SecretStr

from andon.platform.config.settings import (
    DatabaseSettings,
    Environment,
    HttpSettings,
    SecuritySettings,
    Settings,
    WorkerSettings,
)
from andon.platform.db import migrate
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.devmode.demo import CREDENTIALS_FILE, seed_demo
from andon.platform.http.app import create_app

DB_FILES = ("andon.db", "andon.db-wal", "andon.db-shm", CREDENTIALS_FILE)


def _secret_key(data_dir: Path) -> str:
    """One secret per data directory, so sealed secrets (an IdP's client secret) survive restarts."""
    path = data_dir / "secret.key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def dev_settings(data_dir: Path, host: str, port: int, *, traffic: bool = True) -> Settings:
    url = f"sqlite+aiosqlite:///{(data_dir / 'andon.db').resolve()}"
    return Settings(
        environment=Environment.DEVELOPMENT,
        data_dir=data_dir,
        log_json=False,
        dev_mailbox=True,
        demo_traffic_seconds=20 if traffic else 0,
        database=DatabaseSettings(url=url),
        http=HttpSettings(host=host, port=port, base_url=f"http://{host}:{port}"),
        security=SecuritySettings(secret_key=SecretStr(_secret_key(data_dir))),
        # SQLite takes one writer at a time: more threads would only wait on each other.
        workers=WorkerSettings(threads=2),
    )


async def _seed(settings: Settings) -> tuple[dict[str, Any], bool]:
    engine = create_engine(settings.database)
    try:
        return await seed_demo(create_sessionmaker(engine), settings)
    finally:
        await engine.dispose()


def _banner(settings: Settings, creds: dict[str, Any], created: bool) -> str:
    base = settings.http.base_url
    keys = creds["api_keys"]
    lines = [
        "",
        f"  Andon is running at {base}  ({'new demo seeded' if created else 'existing demo data'})",
        f"  API docs:        {base}/api/docs",
        f"  Partner portals: http://northwind.localhost:{settings.http.port}/login, "
        f"http://bluefin.localhost:{settings.http.port}/login (each in its partner's brand)",
        f"  Readiness:       {base}/health/ready",
        f"  Credentials:     {(settings.data_dir / CREDENTIALS_FILE).resolve()}",
        "",
        f"  operator                     {keys['operator']}",
        *(f"  partner  {slug:<20} {key}" for slug, key in keys["partners"].items()),
        *(f"  customer {slug:<20} {key}" for slug, key in keys["customers"].items()),
        "",
        *(
            ["  Sign in at " + base + "/login as any of (password for all: " + creds["logins"][0]["password"] + "):"]
            if creds["logins"]
            else ["  (logins unknown: run 'andon dev --reset' for fresh ones)"]
        ),
        *(f"    {p['persona']:<18} {p['email']}" for p in creds["logins"]),
        "",
        f"  Try:  curl -H 'Authorization: Bearer {keys['partners'].get('northwind', '')}' {base}/api/v1/customers",
        "",
    ]
    return "\n".join(lines)


def run_dev(*, host: str, port: int, data_dir: Path, reset: bool, traffic: bool = True) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if reset:
        for name in DB_FILES:
            (data_dir / name).unlink(missing_ok=True)
    settings = dev_settings(data_dir, host, port, traffic=traffic)
    click.echo("migrating the database ...")
    migrate.upgrade(settings.database)
    click.echo("seeding the demo ...")
    creds, created = asyncio.run(_seed(settings))
    click.echo(_banner(settings, creds, created))
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None)
