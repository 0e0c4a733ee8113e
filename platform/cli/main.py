"""The ``andon`` command: run the product, migrate the database, verify the audit trail."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from andon.billing.stripe.cli import billing
from andon.platform.cli.secrets import secrets
from andon.platform.cli.templates import templates
from andon.platform.config.settings import DatabaseSettings, Settings


@click.group()
@click.version_option(package_name="andon")
def cli() -> None:
    """Andon: production-support orchestration for manufacturers."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--data-dir", default=".andon", show_default=True, type=click.Path(path_type=Path))
@click.option("--reset", is_flag=True, help="Delete the data directory's database and start over.")
@click.option("--no-traffic", is_flag=True, help="Do not play the demo plant's traffic (events every 20 s).")
def dev(host: str, port: int, data_dir: Path, reset: bool, no_traffic: bool) -> None:
    """Run everything in one process on SQLite with the seeded demo."""
    from andon.platform.devmode.runner import run_dev

    run_dev(host=host, port=port, data_dir=data_dir, reset=reset, traffic=not no_traffic)


@cli.command()
@click.option("--host", default=None, help="Defaults to ANDON_HTTP_HOST.")
@click.option("--port", default=None, type=int, help="Defaults to ANDON_HTTP_PORT.")
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the API and portal (production: PostgreSQL and Redis from the environment)."""
    import uvicorn

    settings = Settings()
    uvicorn.run(
        "andon.platform.http.asgi:app",
        host=host or settings.http.host,
        port=port or settings.http.port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
    )


@cli.command()
@click.option("--threads", default=None, type=int, help="Defaults to ANDON_WORKERS_THREADS.")
def worker(threads: int | None) -> None:
    """Run workflow steps and event processing from the broker (production: Redis)."""
    from andon.platform.workers.processes import run_worker

    settings = Settings()
    asyncio.run(run_worker(settings, threads or settings.workers.threads))


@cli.command()
def scheduler() -> None:
    """Fire due timers and send stalled steps again; several may run at once."""
    from andon.platform.workers.processes import run_scheduler

    asyncio.run(run_scheduler(Settings()))


@cli.command()
@click.option("--url", required=True, help="Andon's relay endpoint: wss://<andon host>/api/v1/relay/connect")
@click.option("--token", required=True, envvar="ANDON_RELAY_TOKEN", help="The relay connection's token.")
@click.option("--listen", default="127.0.0.1:8088", show_default=True, help="host:port for the plant's systems.")
@click.option("--queue-dir", required=True, type=click.Path(path_type=Path), help="Where the queue file lives.")
@click.option("--max-queue-events", default=100_000, show_default=True, type=click.IntRange(min=1))
@click.option("--max-queue-mb", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--window", default=8, show_default=True, type=click.IntRange(1, 1000), help="Events sent ahead of acks.")
@click.option("--max-backoff", default=30.0, show_default=True, type=click.FloatRange(min=0.1))
def relay(
    url: str,
    token: str,
    listen: str,
    queue_dir: Path,
    max_queue_events: int,
    max_queue_mb: int,
    window: int,
    max_backoff: float,
) -> None:
    """Run the on-premise relay agent: take the plant's events locally, forward them to Andon."""
    from andon.connectors.onprem.agent import AgentSettings, run_agent
    from andon.connectors.onprem.forwarder import LinkSettings
    from andon.platform.observability.logging import configure_logging

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("host:port, e.g. 0.0.0.0:8088", param_hint="--listen")
    configure_logging("INFO", json=True)
    link = LinkSettings(url=url, token=token, window=window, max_backoff=max_backoff)
    settings = AgentSettings(
        link=link,
        queue_dir=queue_dir,
        host=host,
        port=int(port),
        max_entries=max_queue_events,
        max_bytes=max_queue_mb * 1024 * 1024,
    )
    asyncio.run(run_agent(settings))


@cli.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate to REVISION (default: the newest), then grant the app role its privileges."""
    from andon.platform.db import migrate

    settings = DatabaseSettings()
    migrate.upgrade(settings, revision)
    click.echo(f"database at {migrate.current(settings)}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate down to REVISION ('-1' for one step, 'base' for an empty database)."""
    from andon.platform.db import migrate

    settings = DatabaseSettings()
    migrate.downgrade(settings, revision)
    click.echo(f"database at {migrate.current(settings)}")


@db.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from andon.platform.db import migrate

    click.echo(migrate.current(DatabaseSettings()))


@cli.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Check every chain: no entry edited, removed or reordered. Exit 1 naming the first bad entry."""
    from andon.platform.audit.service import verify
    from andon.platform.db.engine import create_engine, create_sessionmaker

    settings = DatabaseSettings()

    async def _run() -> int:
        engine = create_engine(settings, url=settings.owner_url)
        try:
            async with create_sessionmaker(engine)() as session:
                report = await verify(session)
        finally:
            await engine.dispose()
        if report.ok:
            click.echo(f"audit trail intact: {report.entries} entries in {report.chains} chains")
            return 0
        for p in report.problems:
            click.echo(f"TAMPERED chain={p.chain} entry={p.entry_id} seq={p.seq}: {p.reason}", err=True)
        click.echo(f"audit trail broken in {len(report.problems)} of {report.chains} chains", err=True)
        return 1

    sys.exit(asyncio.run(_run()))


cli.add_command(billing)
cli.add_command(secrets)
cli.add_command(templates)


if __name__ == "__main__":
    cli()
