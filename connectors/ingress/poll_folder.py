"""Picking up the files a system drops in a folder (``drop_folder`` connections; an SFTP landing area).

Each customer has a drop area of its own, ``<polling.drop_root>/<customer id>/``; a connection's
``config.path`` is a folder inside it (relative, or absolute within it), and a path that leads
anywhere else (``/etc``, a symlink out of the area) is refused: a customer never reads the server's
files, or another customer's.

Each run takes the folder's files that match ``config.pattern``, oldest first, skipping hidden files,
those still being written (a ``.part``-style suffix, or changed in the last two seconds) and anything
that is not a regular file. Each file is one delivery (``file <name>``): CSV rows (a header row;
values stay strings, an empty cell is null), a JSON array (or one object), or JSON lines. Once its
events are committed the file moves to ``processed/``; a file that cannot become events moves to
``failed/``, its reason in the connection's delivery log.

The cursor names the last file whose events were committed (its name, modification time and size),
so after a crash between the commit and the move the file is moved on without being delivered again.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import stat
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import msgspec

from andon.connectors.ingress.poll_run import PollError, PollLimits, PollRun
from andon.connectors.sources.intake import Delivery, Unlogged
from andon.connectors.sources.kinds import DropFolderConfig
from andon.platform.http.errors import AndonError

PROCESSED = "processed"
FAILED = "failed"
# A file modified more recently than this is taken to be still being written.
SETTLE_SECONDS = 2.0
PARTIAL_SUFFIXES = (".part", ".partial", ".filepart", ".tmp")


class Malformed(Exception):
    """A file that cannot become events; the message is the reason logged with its refusal."""


@dataclass(frozen=True, slots=True)
class DropFile:
    path: Path
    name: str
    mtime_ns: int
    size: int

    def marker(self) -> str:
        """The cursor saying this file's events are committed."""
        return msgspec.json.encode({"file": self.name, "mtime_ns": self.mtime_ns, "size": self.size}).decode()


def drop_area(limits: PollLimits, tenant_id: uuid.UUID) -> Path:
    return (limits.drop_root / str(tenant_id)).resolve()


def folder_in_area(area: Path, path: str) -> Path:
    """The connection's folder, which must lie inside the customer's drop area (symlinks followed)."""
    given = Path(path)
    folder = (given if given.is_absolute() else area / given).resolve()
    if folder != area and not folder.is_relative_to(area):
        raise PollError(
            f"config.path: {path} is outside this customer's drop area; give a folder relative to it "
            "(for example 'incoming')"
        )
    return folder


def ready_files(folder: Path, pattern: str, now: float) -> list[DropFile]:
    """The files to take, oldest first."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES) or not fnmatch(name, pattern):
                continue
            info = entry.stat(follow_symlinks=False)
            # Symlinks, folders and devices are not files someone dropped.
            if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < SETTLE_SECONDS:
                continue
            found.append(DropFile(Path(entry.path), name, info.st_mtime_ns, info.st_size))
    return sorted(found, key=lambda f: (f.mtime_ns, f.name))


def read_file(file: DropFile, max_bytes: int) -> bytes:
    fd = os.open(file.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise Malformed(f"the file has {size} bytes; at most {max_bytes} are taken")
        return handle.read(max_bytes + 1)


def load(file: DropFile, max_bytes: int, file_format: str) -> list[Any]:
    return decode(read_file(file, max_bytes), file_format)


def decode(data: bytes, file_format: str) -> list[Any]:
    """The records of a file; Malformed names what is wrong (and where)."""
    if file_format == "csv":
        return _csv_records(data)
    if file_format == "json":
        try:
            document = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise Malformed(f"the file is not JSON ({exc})") from None
        if isinstance(document, list):
            return document
        if isinstance(document, dict):
            return [document]
        raise Malformed("a JSON file holds an array of records, or one record (an object)")
    records = []
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                records.append(msgspec.json.decode(line))
            except msgspec.DecodeError as exc:
                raise Malformed(f"line {number} is not JSON ({exc})") from None
    return records


def _csv_records(data: bytes) -> list[Any]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Malformed(f"the file is not UTF-8 text (byte {exc.start})") from None
    # Fields beyond the header's columns are gathered under the key None.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records = []
    try:
        header: Sequence[str] = reader.fieldnames or []
        if any(not name.strip() for name in header):
            raise Malformed("the header row has a column without a name")
        if len(set(header)) != len(header):
            raise Malformed("the header row names a column twice")
        for row in reader:
            if None in row:
                raise Malformed(f"line {reader.line_num} has more fields than the header has columns")
            records.append({name: (value if value != "" else None) for name, value in row.items()})
    except csv.Error as exc:
        raise Malformed(f"line {reader.line_num}: {exc}") from None
    return records


def move(file: DropFile, into: str) -> None:
    """Into ``processed/`` or ``failed/`` beside it, under a new name if the name is taken there."""
    target_dir = file.path.parent / into
    target_dir.mkdir(exist_ok=True)
    if target_dir.is_symlink() or not target_dir.is_dir():
        # A link planted there would carry the file out of the customer's area.
        raise PollError(f"cannot move {file.name}: {into}/ in the folder is not a plain folder")
    target = target_dir / file.name
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = target_dir / f"{file.path.stem}.{stamp}{file.path.suffix}"
    file.path.rename(target)


class FolderPoller:
    def __init__(self, limits: PollLimits) -> None:
        self.limits = limits

    async def run(self, run: PollRun, config: DropFolderConfig) -> bool:
        """Delivers the folder's ready files; True when files are left for the next run."""
        try:
            files = await asyncio.to_thread(self._list, run.found.tenant_id, config)
        except OSError as exc:
            raise PollError(f"config.path: cannot read the folder {config.path} ({exc.strerror or exc})") from None
        for file in files[: self.limits.max_batches]:
            if run.cursor == file.marker():
                # Delivered and committed before a crash, not yet moved.
                await self._move(file, PROCESSED)
                continue
            await self._take(run, config, file)
        return len(files) > self.limits.max_batches

    def _list(self, tenant_id: uuid.UUID, config: DropFolderConfig) -> list[DropFile]:
        folder = folder_in_area(drop_area(self.limits, tenant_id), config.path)
        folder.mkdir(parents=True, exist_ok=True)
        return ready_files(folder, config.pattern, time.time())

    async def _take(self, run: PollRun, config: DropFolderConfig, file: DropFile) -> None:
        reference = f"file {file.name}"
        try:
            records = await asyncio.to_thread(load, file, self.limits.max_file_bytes, config.format)
        except FileNotFoundError:
            return  # taken away since the listing
        except Malformed as exc:
            await run.refuse(Delivery(body=b"", payloads=[], reference=reference), str(exc))
            await self._move(file, FAILED)
            return
        except OSError as exc:
            raise PollError(f"cannot read {file.name} ({exc.strerror or exc})") from None
        if records:
            try:
                await run.deliver(Delivery(body=b"", payloads=records, reference=reference))
            except Unlogged:
                raise PollError("the customer is suspended: not polled until it is active again") from None
            except AndonError:
                # Refused for what it holds (the intake logged why): sending it again would not help.
                await self._move(file, FAILED)
                return
        await run.advance(file.marker())
        await self._move(file, PROCESSED)

    @staticmethod
    async def _move(file: DropFile, into: str) -> None:
        try:
            await asyncio.to_thread(move, file, into)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise PollError(f"cannot move {file.name} into {into}/ ({exc.strerror or exc})") from None
