"""A counting remote for action steps: a small HTTP/1.1 keep-alive server on raw asyncio (uvloop
when installed), run in its own process so it does not share the runner's interpreter.

Every ``POST`` answers 200 ``{"ok": true}`` at once and records when it first saw the request's
``Idempotency-Key`` (wall clock, ``time.time()``). ``GET /stats`` answers the counts, ``GET /times``
every key with its first arrival.

    python -m benchmarks.engine.fake --port 8711
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed with litestar[standard]
    uvloop = None  # type: ignore[assignment]

OK = b'{"ok":true}'


class Remote:
    def __init__(self) -> None:
        self.requests = 0
        self.first_seen: dict[str, float] = {}

    def reply(self, status: int, body: bytes) -> bytes:
        head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    def answer(self, method: bytes, path: bytes, key: str | None) -> bytes:
        if method == b"GET" and path == b"/times":
            return self.reply(200, json.dumps(self.first_seen).encode())
        if method == b"GET":
            stats = {"requests": self.requests, "keys": len(self.first_seen)}
            return self.reply(200, json.dumps(stats).encode())
        self.requests += 1
        if key is not None and key not in self.first_seen:
            self.first_seen[key] = time.time()
        return self.reply(200, OK)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path, _ = lines[0].split(b" ", 2)
                length, key = 0, None
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"idempotency-key":
                        key = value.strip().decode()
                if length:
                    await reader.readexactly(length)
                writer.write(self.answer(method, path, key))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def main_async(port: int) -> None:
    remote = Remote()
    server = await asyncio.start_server(remote.serve, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if uvloop is not None:
        uvloop.run(main_async(args.port))
    else:  # pragma: no cover
        asyncio.run(main_async(args.port))


if __name__ == "__main__":
    main()
