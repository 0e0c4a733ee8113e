"""A real SFTP server (asyncssh) on 127.0.0.1, chroot'ed to a directory, for the SFTP connector's tests.

It runs on its own event loop in a thread, so a test that blocks its own loop (a Dramatiq worker
drained synchronously) still reaches it. One user logs in by password or by public key. Every open
for writing and every rename is recorded, so a test can tell how a file came to be; with
``posix_rename=False`` the server refuses the POSIX rename extension, as some servers do.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

USERNAME = "andon"
PASSWORD = "sftp-Pa55word-4410"


@dataclass(frozen=True)
class SftpKeys:
    """Made once per test session: the server's host key and the user's login key."""

    host: asyncssh.SSHKey
    user: asyncssh.SSHKey

    @property
    def host_public(self) -> str:
        return self.host.export_public_key("openssh").decode().strip()

    @property
    def user_private(self) -> str:
        return self.user.export_private_key("openssh").decode()


def make_keys() -> SftpKeys:
    return SftpKeys(asyncssh.generate_private_key("ssh-ed25519"), asyncssh.generate_private_key("ssh-ed25519"))


@dataclass
class SftpServer:
    root: Path
    port: int = 0
    # ("write", path) for every open for writing; ("rename" | "posix_rename", old, new) for renames.
    seen: list[tuple[str, ...]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, *what: str) -> None:
        with self.lock:
            self.seen.append(what)

    def log(self) -> list[tuple[str, ...]]:
        with self.lock:
            return list(self.seen)


class _Files(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], server: SftpServer, posix_rename: bool) -> None:
        super().__init__(chan, chroot=str(server.root).encode())
        self._server = server
        self._posix = posix_rename

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & asyncssh.FXF_WRITE:
            self._server.record("write", path.decode())
        return super().open(path, pflags, attrs)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._server.record("rename", oldpath.decode(), newpath.decode())
        super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if not self._posix:
            raise asyncssh.SFTPOpUnsupported("POSIX rename not supported")
        self._server.record("posix_rename", oldpath.decode(), newpath.decode())
        super().posix_rename(oldpath, newpath)


class _Logins(asyncssh.SSHServer):
    def __init__(self, user_key: asyncssh.SSHKey) -> None:
        self._user_key = user_key

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USERNAME and password == PASSWORD

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == USERNAME and key.public_data == self._user_key.public_data


@contextmanager
def sftp_server(root: Path, keys: SftpKeys, *, posix_rename: bool = True) -> Iterator[SftpServer]:
    server = SftpServer(root)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sftp-server", daemon=True)
    thread.start()

    async def listen() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[keys.host],
            server_factory=lambda: _Logins(keys.user),
            sftp_factory=lambda chan: _Files(chan, server, posix_rename),
            allow_scp=False,
        )

    acceptor = asyncio.run_coroutine_threadsafe(listen(), loop).result(10)
    server.port = acceptor.get_port()
    try:
        yield server
    finally:

        async def close() -> None:
            acceptor.close()
            await acceptor.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
