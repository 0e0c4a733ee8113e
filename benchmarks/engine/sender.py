"""An open-loop CloudEvents sender: a steady rate regardless of how fast the server answers.

Event ``i`` is due at ``start + i / rate``; it goes out on an idle keep-alive connection (a new one
opens when all are busy), so a slow answer does not delay the events after it. Every event has its
own ``id`` and its own ``source`` (``urn:bench:cell-<tag>-<i>``): its own dedup key and its own
"site", so each one opens a new alert that notifies (no repeat, no chattering, no site flood) and
can start a run. Prints one JSON object on stdout.

    python -m benchmarks.engine.sender --port 8710 --key andon_... --rate 200 --duration 30 --tag t1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed with litestar[standard]
    uvloop = None  # type: ignore[assignment]

TYPE = "dev.andon.machine.alarm.v1"


def event(tag: str, number: int) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"{tag}-{number}",
            "source": f"urn:bench:cell-{tag}-{number}",
            "type": TYPE,
            "datacontenttype": "application/json",
            "severity": "high",
            "data": {"code": "E42", "message": "Over temperature", "value": 96.5},
        },
        separators=(",", ":"),
    ).encode()


@dataclass
class Tally:
    latencies_ns: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    late_ns: list[int] = field(default_factory=list)


class Connections:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)


async def _send(pool: Connections, path: str, key: str, body: bytes, tally: Tally, due_ns: int) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {pool.host}:{pool.port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/cloudevents+json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    started = time.perf_counter_ns()
    tally.late_ns.append(max(0, started - due_ns))
    try:
        reader, writer = await pool.take()
        writer.write(head + body)
        answer = await reader.readuntil(b"\r\n\r\n")
        status = int(answer[9:12])
        for line in answer.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                await reader.readexactly(int(value))
                break
    except (OSError, asyncio.IncompleteReadError, ValueError):
        tally.errors += 1
        return
    tally.latencies_ns.append(time.perf_counter_ns() - started)
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    pool.idle.append((reader, writer))


def percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index] / 1e6


async def run(args: argparse.Namespace) -> dict[str, object]:
    pool = Connections(args.host, args.port)
    tally = Tally()
    total = int(args.rate * args.duration)
    interval_ns = int(1e9 / args.rate)
    tasks: set[asyncio.Task[None]] = set()
    cpu_before = time.process_time()
    start = time.perf_counter_ns() + 50_000_000
    for number in range(total):
        due = start + number * interval_ns
        wait = (due - time.perf_counter_ns()) / 1e9
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(_send(pool, args.path, args.key, event(args.tag, number), tally, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_in = (time.perf_counter_ns() - start) / 1e9
    await asyncio.gather(*tasks)
    cpu = time.process_time() - cpu_before
    for _, writer in pool.idle:
        writer.close()
    latencies, late = sorted(tally.latencies_ns), sorted(tally.late_ns)
    return {
        "rate": args.rate,
        "duration_s": args.duration,
        "sent": total,
        "sent_in_s": round(sent_in, 2),
        "accepted": sum(n for s, n in tally.statuses.items() if 200 <= s < 300),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": tally.errors,
        "connections": pool.opened,
        "accept_p50_ms": round(percentile(latencies, 0.50), 2),
        "accept_p99_ms": round(percentile(latencies, 0.99), 2),
        "accept_max_ms": round(latencies[-1] / 1e6, 2) if latencies else None,
        "send_late_p99_ms": round(percentile(late, 0.99), 2),
        "client_cpu_share": round(cpu / max(sent_in, 1e-9), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/api/v1/events")
    parser.add_argument("--key", required=True)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--tag", required=True, help="event id and source prefix, unique per run")
    args = parser.parse_args(argv)
    result = uvloop.run(run(args)) if uvloop is not None else asyncio.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
