"""File drops on the customer's SFTP server (asyncssh): a CSV built from rows, or a text/JSON document.

The server's name is checked like any URL (public addresses only, unless allowed) and the SSH
connection is opened to the address that was checked, so a second DNS answer cannot swap it. The
server's host key is part of the connection's settings and is the only one accepted: an unknown key
fails the call, and the check reports the fingerprint the server presented so an administrator can
verify it before pasting it.

A file is written to ``<name>.part``, synced, then renamed over ``<name>`` (POSIX rename where the
server offers it), so a reader never sees half a file; a ``.part`` left by a crash is overwritten by
the retry.

Idempotency, by content: a file that already holds exactly the bytes a call would write (same size,
same SHA-256) is left alone and the call succeeds with ``written: false``. A repeat of a step (same
idempotency key, same inputs) therefore writes once. A reader that has already taken the file away
(moved or deleted it) gets it again on such a repeat: SFTP keeps no record of who wrote what, so a
reader that consumes files should remember the names it has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import posixpath
import unicodedata
import uuid
from typing import Annotated, Any, Literal

import asyncssh
import msgspec
from asyncssh.public_key import get_default_public_key_algs

from andon.connectors.egress import EgressError, addresses_for
from andon.connectors.outbound.errors import ConnectorError, from_egress
from andon.connectors.outbound.types import Capability, ConnectorType, SecretField, Using
from andon.platform.engine.capabilities import FAILED, FORBIDDEN, INVALID, NOT_FOUND, UNAVAILABLE

# The largest file a call writes: a file drop is a report or a batch, not a bulk transfer, and the
# whole file is built in memory first (the same idea as the egress guard's answer limit).
MAX_FILE_BYTES = 10_000_000
MAX_ROWS = 200_000

Host = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.\-:\[\]]+$", max_length=253)]
Username = Annotated[str, msgspec.Meta(pattern=r"^[^\s\x00-\x1f\x7f]+$", max_length=100)]
Directory = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[^\x00-\x1f\x7f]+$",
        max_length=1000,
        description="Where files are written: absolute (/upload/andon) or relative to the login directory.",
    ),
]
HostKey = Annotated[
    str,
    msgspec.Meta(
        min_length=20,
        max_length=8000,
        description="The server's public host key, as ssh-keyscan prints it (ssh-ed25519 AAAAC3Nza...). "
        "Only this key is accepted; the check shows the key a server presents.",
    ),
]
# 250: room for ".part" within the 255 bytes most file systems allow a name.
FileName = Annotated[str, msgspec.Meta(min_length=1, max_length=250)]
Column = Annotated[str, msgspec.Meta(max_length=200)]
Step = tuple[str, bool, str]


def host_key_of(text: str) -> asyncssh.SSHKey:
    """A public key in OpenSSH format; a known_hosts or ssh-keyscan line (host first) is accepted too."""
    words = text.split()
    for candidate in (text.strip(), " ".join(words[1:])):
        try:
            return asyncssh.import_public_key(candidate)
        except (asyncssh.KeyImportError, ValueError):
            continue
    raise ValueError("known_host_key: not an SSH public key (expected e.g. 'ssh-ed25519 AAAAC3Nza...')")


class SftpConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: Host
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 22
    username: Username
    directory: Directory = "."
    # Required: an unknown host key is never accepted (no "trust on first use").
    known_host_key: HostKey
    auth: Literal["password", "private_key"] = "password"

    def __post_init__(self) -> None:
        # Kept in one canonical form, so what is stored is what was checked.
        self.known_host_key = host_key_of(self.known_host_key).export_public_key("openssh").decode().strip()


class PutCsv(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    filename: FileName
    columns: Annotated[list[Column], msgspec.Meta(min_length=1, max_length=500)]
    # Each row an object (its values taken by column name; other keys are left out) or a list of values
    # in column order.
    rows: Annotated[list[dict[str, Any] | list[Any]], msgspec.Meta(max_length=MAX_ROWS)]
    delimiter: Literal[",", ";", "\t", "|"] = ","
    header: bool = True


class PutFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    filename: FileName
    # Text is written as it is; an object or a list is written as JSON.
    content: str | dict[str, Any] | list[Any]
    encoding: Literal["utf-8", "utf-8-sig", "utf-16", "iso-8859-1", "cp1252", "ascii"] = "utf-8"


class StepFailed(ConnectorError):
    """A failure, with the step of the exchange it happened in (what "check connection" reports)."""

    def __init__(self, step: str, message: str, kind: str) -> None:
        super().__init__(message, kind)
        self.step = step


def checked_filename(name: str) -> str:
    if (
        "/" in name
        or "\\" in name
        or ".." in name
        or name.strip() in ("", ".")
        or any(unicodedata.category(c) == "Cc" for c in name)
    ):
        raise ConnectorError(
            "inputs.filename: a plain file name, without '/', '\\', '..' or control characters", INVALID
        )
    return name


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return msgspec.json.encode(value).decode()


def csv_bytes(inputs: PutCsv) -> bytes:
    """RFC 4180: CRLF line ends, fields quoted with '"' when they need it, quotes doubled; UTF-8."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=inputs.delimiter, quotechar='"', doublequote=True, lineterminator="\r\n")
    if inputs.header:
        writer.writerow(inputs.columns)
    width = len(inputs.columns)
    for number, row in enumerate(inputs.rows):
        if isinstance(row, list):
            if len(row) != width:
                raise ConnectorError(f"inputs.rows[{number}]: {len(row)} values for {width} columns", INVALID)
            values = row
        else:
            values = [row.get(column) for column in inputs.columns]
        writer.writerow([_cell(v) for v in values])
        if out.tell() > MAX_FILE_BYTES:
            break  # too large already: the size check below says so
    return out.getvalue().encode("utf-8")


def file_bytes(inputs: PutFile) -> bytes:
    text = inputs.content if isinstance(inputs.content, str) else msgspec.json.encode(inputs.content).decode()
    try:
        return text.encode(inputs.encoding)
    except UnicodeEncodeError as exc:
        raise ConnectorError(
            f"inputs.content: character {exc.object[exc.start : exc.start + 1]!r} at {exc.start} "
            f"cannot be written in {inputs.encoding}",
            INVALID,
        ) from None


class _Witness(asyncssh.SSHClient):
    """What the handshake got to: the socket connected, and the host key presented when it was not ours."""

    def __init__(self) -> None:
        self.connected = False
        self.presented: asyncssh.SSHKey | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self.connected = True

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        # Asked only for a key other than the configured one (that one is trusted outright).
        self.presented = key
        return False


def _describe(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


def _login(using: Using, config: SftpConfig) -> dict[str, Any]:
    """asyncssh options for the login; nothing from this machine's ~/.ssh, agent or Kerberos is used."""
    if config.auth == "password":
        return {
            "password": using.secrets.get("password", ""),
            "client_keys": None,
            "preferred_auth": "password,keyboard-interactive",
        }
    try:
        key = asyncssh.import_private_key(using.secrets.get("private_key", ""), using.secrets.get("passphrase") or None)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
        # asyncssh's reason names the problem (format, passphrase), never the key's content.
        raise StepFailed("log in", f"the connection's private key cannot be used: {exc}", INVALID) from None
    return {"client_keys": [key], "password": None, "preferred_auth": "publickey"}


async def _connect(using: Using, progress: list[Step]) -> asyncssh.SSHClientConnection:
    """Connected to a checked address, the host key verified, logged in; each step done is in ``progress``."""
    config: SftpConfig = using.config
    trusted = host_key_of(config.known_host_key)
    login = _login(using, config)
    try:
        addresses = await addresses_for(
            config.host, config.port, allow_private=using.limits.allow_private, resolve=using.egress.resolve
        )
    except EgressError as exc:
        failure = from_egress(exc)
        raise StepFailed("resolve and connect", str(failure), failure.kind) from None
    # The configured key's algorithms first, so a server holding it presents it; the rest after, so a
    # server without it still presents a key whose fingerprint the check can report.
    algorithms = [a.decode() for a in dict.fromkeys([*trusted.sig_algorithms, *get_default_public_key_algs()])]
    where = f"{config.host}:{config.port}"
    last = ""
    for address in addresses:
        witness = _Witness()
        try:
            connection = await asyncssh.connect(
                address.split("%", 1)[0],
                config.port,
                client_factory=lambda seen=witness: seen,
                username=config.username,
                known_hosts=([trusted], [], []),
                server_host_key_algs=algorithms,
                config=[],
                x509_trusted_certs=None,
                x509_trusted_cert_paths=None,
                agent_path=None,
                agent_forwarding=False,
                gss_auth=False,
                gss_kex=False,
                host_based_auth=False,
                kbdint_auth=config.auth == "password",
                connect_timeout=using.limits.timeout_seconds,
                login_timeout=using.limits.timeout_seconds,
                **login,
            )
        except asyncssh.HostKeyNotVerifiable:
            progress.append(("resolve and connect", True, f"{where} at {address}"))
            presented = witness.presented
            seen = f"presented {_describe(presented)}" if presented else "presented a key it cannot prove"
            paste = presented.export_public_key("openssh").decode().strip() if presented else ""
            hint = f"; if an administrator confirms it is the server's key, paste: {paste}" if len(paste) < 200 else ""
            raise StepFailed(
                "host key",
                f"{where} {seen}, not the connection's known host key {_describe(trusted)}{hint}",
                INVALID,
            ) from None
        except asyncssh.PermissionDenied:
            progress.append(("resolve and connect", True, f"{where} at {address}"))
            progress.append(("host key", True, f"{_describe(trusted)}, as configured"))
            raise StepFailed(
                "log in", f"{where} refused the login of {config.username} by {config.auth}", FORBIDDEN
            ) from None
        except TimeoutError:
            step = "SSH handshake" if witness.connected else "resolve and connect"
            if witness.connected:
                progress.append(("resolve and connect", True, f"{where} at {address}"))
            raise StepFailed(
                step, f"{where} did not finish the {step} within {using.limits.timeout_seconds:g} s", UNAVAILABLE
            ) from None
        except asyncssh.Error as exc:
            progress.append(("resolve and connect", True, f"{where} at {address}"))
            reason = getattr(exc, "reason", "") or type(exc).__name__
            raise StepFailed("SSH handshake", f"the SSH handshake with {where} failed: {reason}", UNAVAILABLE) from None
        except OSError as exc:
            last = exc.strerror or str(exc) or type(exc).__name__
            continue  # the next address, as a browser would
        progress.append(("resolve and connect", True, f"{where} at {address}"))
        progress.append(("host key", True, f"{_describe(trusted)}, as configured"))
        progress.append(("log in", True, f"as {config.username} by {config.auth}"))
        return connection
    raise StepFailed("resolve and connect", f"cannot connect to {where}: {last}", UNAVAILABLE)


def _sftp_failure(step: str, what: str, exc: Exception) -> StepFailed:
    if isinstance(exc, asyncssh.SFTPNoSuchFile | asyncssh.SFTPNoSuchPath | asyncssh.SFTPNotADirectory):
        kind = NOT_FOUND
    elif isinstance(exc, asyncssh.SFTPPermissionDenied | asyncssh.SFTPWriteProtect):
        kind = FORBIDDEN
    elif isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.DisconnectError | OSError):
        kind = UNAVAILABLE
    elif isinstance(exc, asyncssh.ChannelOpenError):
        return StepFailed(step, f"the server does not offer SFTP to this user: {exc.reason}", INVALID)
    else:
        kind = FAILED  # out of space, quota, a failure the server may recover from
    reason = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
    return StepFailed(step, f"{what}: {reason}", kind)


def _join(directory: str, name: str) -> str:
    return posixpath.join(directory, name) if directory not in ("", ".") else name


async def _same_file(sftp: asyncssh.SFTPClient, path: str, data: bytes) -> bool:
    """Whether ``path`` already holds exactly ``data``; the size is compared before any byte is read."""
    try:
        attrs = await sftp.stat(path)
    except asyncssh.SFTPNoSuchFile:
        return False
    if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR or attrs.size != len(data):
        return False
    async with sftp.open(path, "rb") as held:
        existing = await held.read()
    return isinstance(existing, bytes) and hashlib.sha256(existing).digest() == hashlib.sha256(data).digest()


async def _replace(sftp: asyncssh.SFTPClient, part: str, target: str) -> None:
    try:
        await sftp.posix_rename(part, target)
        return
    except asyncssh.SFTPOpUnsupported:
        pass
    # A server without POSIX rename cannot replace a file in one step: the old file is removed first,
    # so a reader may briefly find no file, but never a partial one.
    try:
        await sftp.rename(part, target)
    except (asyncssh.SFTPFileAlreadyExists, asyncssh.SFTPFailure):
        # SFTP v3 says only "failure": the old file is removed only when it is why the rename failed.
        if not await sftp.exists(target):
            raise
        await sftp.remove(target)
        await sftp.rename(part, target)


async def _write(sftp: asyncssh.SFTPClient, path: str, data: bytes) -> None:
    async with sftp.open(path, "wb") as out:
        await out.write(data)
        # Without fsync the rename still makes the file whole; only a crash of the server could lose it.
        with contextlib.suppress(asyncssh.SFTPOpUnsupported):
            await out.fsync()


async def _discard(sftp: asyncssh.SFTPClient, path: str) -> None:
    # Gone already, or the connection is: the next write of the name overwrites it.
    with contextlib.suppress(asyncssh.Error, OSError):
        await sftp.remove(path)


async def put(using: Using, filename: str, data: bytes) -> dict[str, Any]:
    """Writes ``data`` as ``filename`` in the connection's directory, atomically, once."""
    config: SftpConfig = using.config
    name = checked_filename(filename)
    if len(data) > MAX_FILE_BYTES:
        raise ConnectorError(f"the file would be {len(data)} bytes; at most {MAX_FILE_BYTES} are written", INVALID)
    target = _join(config.directory, name)
    part = target + ".part"
    digest = hashlib.sha256(data).hexdigest()
    try:
        async with asyncio.timeout(using.limits.timeout_seconds):
            connection = await _connect(using, [])
            async with connection, connection.start_sftp_client() as sftp:
                try:
                    if await _same_file(sftp, target, data):
                        return {"path": target, "bytes": len(data), "sha256": digest, "written": False}
                    await _write(sftp, part, data)
                    await _replace(sftp, part, target)
                except (asyncssh.Error, OSError) as exc:
                    await _discard(sftp, part)
                    raise _sftp_failure("write", f"writing {target} on {config.host} failed", exc) from None
    except TimeoutError:
        raise ConnectorError(
            f"writing {target} on {config.host} did not finish within {using.limits.timeout_seconds:g} s", UNAVAILABLE
        ) from None
    except asyncssh.ChannelOpenError as exc:
        raise _sftp_failure("start SFTP", "SFTP", exc) from None
    except (asyncssh.Error, OSError) as exc:
        raise _sftp_failure("write", f"the connection to {config.host} failed", exc) from None
    return {"path": target, "bytes": len(data), "sha256": digest, "written": True}


async def _put_csv(using: Using, inputs: PutCsv) -> dict[str, Any]:
    checked_filename(inputs.filename)
    return {**await put(using, inputs.filename, csv_bytes(inputs)), "rows": len(inputs.rows)}


async def _put_file(using: Using, inputs: PutFile) -> dict[str, Any]:
    checked_filename(inputs.filename)
    return await put(using, inputs.filename, file_bytes(inputs))


async def _probe(using: Using, progress: list[Step]) -> None:
    config: SftpConfig = using.config
    connection = await _connect(using, progress)
    async with connection:
        try:
            sftp = await connection.start_sftp_client()
        except asyncssh.ChannelOpenError as exc:
            raise _sftp_failure("start SFTP", "SFTP", exc) from None
        async with sftp:
            try:
                if not await sftp.isdir(config.directory):
                    raise StepFailed("remote directory", f"{config.directory} is not a directory there", NOT_FOUND)
            except asyncssh.SFTPError as exc:
                raise _sftp_failure("remote directory", f"cannot read {config.directory}", exc) from None
            progress.append(("remote directory", True, f"{config.directory} exists"))
            probe = _join(config.directory, f".andon-check-{uuid.uuid4().hex[:12]}.part")
            try:
                await _write(sftp, probe, b"andon connection check\n")
                await sftp.remove(probe)
            except asyncssh.SFTPError as exc:
                raise _sftp_failure("write and remove a probe file", f"in {config.directory}", exc) from None
            progress.append(
                ("write and remove a probe file", True, f"{posixpath.basename(probe)} in {config.directory}")
            )


async def _check(using: Using) -> list[Step]:
    progress: list[Step] = []
    try:
        async with asyncio.timeout(using.limits.timeout_seconds):
            await _probe(using, progress)
    except StepFailed as exc:
        return [*progress, (exc.step, False, str(exc))]
    except TimeoutError:
        return [*progress, ("check", False, f"no answer within {using.limits.timeout_seconds:g} s")]
    except (asyncssh.Error, OSError) as exc:
        return [*progress, ("check", False, f"{type(exc).__name__}: {getattr(exc, 'reason', '') or exc}")]
    return progress


def _auth_is(kind: str) -> Any:
    return lambda config: getattr(config, "auth", None) == kind


SFTP = ConnectorType(
    key="sftp",
    title="SFTP file drop",
    description="Writes CSV or text/JSON files to the customer's SFTP server, atomically, host key verified.",
    config=SftpConfig,
    secrets=(
        SecretField("password", "Password", _auth_is("password")),
        SecretField("private_key", "Private key (OpenSSH or PKCS#8 PEM)", _auth_is("private_key")),
        SecretField("passphrase", "Passphrase of the private key (if it has one)", lambda config: False),
    ),
    capabilities={
        "put_csv": Capability("put_csv", "Write a CSV file", PutCsv, _put_csv),
        "put_file": Capability("put_file", "Write a text or JSON file", PutFile, _put_file),
    },
    check=_check,
)
