"""``andon secrets``: the keys that seal stored secrets, and their rotation."""

from __future__ import annotations

import asyncio
import sys

import click

from andon.platform.config.settings import Settings


@click.group()
def secrets() -> None:
    """Keys that seal stored secrets (ANDON_SECURITY_ENCRYPTION_KEYS) and their rotation."""


@secrets.command("generate-key")
def generate_key() -> None:
    """Print a new key entry to put first in ANDON_SECURITY_ENCRYPTION_KEYS (then run rotate)."""
    from andon.platform.crypto.secretbox import generate_key as new_key

    click.echo(new_key())


@secrets.command("status")
def status() -> None:
    """Count the sealed values under each key; exit 1 if any is under a key no longer configured."""
    sys.exit(asyncio.run(_rotate(dry_run=True, batch=500)))


@secrets.command("rotate")
@click.option("--batch", default=200, show_default=True, type=click.IntRange(1, 10_000), help="Rows per transaction.")
@click.option("--dry-run", is_flag=True, help="Count what would be re-wrapped; change nothing.")
def rotate(batch: int, dry_run: bool) -> None:
    """Re-wrap every sealed secret under the first configured key. Safe to interrupt and run again."""
    sys.exit(asyncio.run(_rotate(dry_run=dry_run, batch=batch)))


async def _rotate(*, dry_run: bool, batch: int) -> int:
    from andon.platform.crypto.rotation import ColumnReport, rotate_all
    from andon.platform.crypto.secretbox import SecretBox, SecretBoxError
    from andon.platform.db.engine import create_engine, create_sessionmaker
    from andon.platform.db.models_registry import load_all_models

    settings = Settings()
    try:
        box = SecretBox(settings.encryption_keys())
    except SecretBoxError as exc:
        click.echo(f"ANDON_SECURITY_ENCRYPTION_KEYS: {exc}", err=True)
        return 2
    verb = "would re-wrap" if dry_run else "re-wrapped"

    def progress(report: ColumnReport) -> None:
        if report.rows and not report.rows % (batch * 10):
            click.echo(f"  {report.column}: {report.rows} rows so far", err=True)

    engine = create_engine(settings.database)
    try:
        reports = await rotate_all(
            create_sessionmaker(engine), box, load_all_models(), dry_run=dry_run, batch=batch, progress=progress
        )
    finally:
        await engine.dispose()
    click.echo(f"active key: {box.active} (configured: {', '.join(box.key_ids)})")
    unreadable = 0
    for report in reports:
        keys = ", ".join(f"{kid} {n}" for kid, n in sorted(report.keys_before.items())) or "none"
        click.echo(f"{report.column}: {report.values} values in {report.rows} rows (by key: {keys})")
        click.echo(f"  {verb} {report.rewrapped}")
        for problem in report.unreadable:
            click.echo(f"  CANNOT OPEN {problem}", err=True)
        unreadable += len(report.unreadable)
    if unreadable:
        click.echo(f"{unreadable} value(s) no configured key opens: add the key they were sealed with", err=True)
        return 1
    return 0
