"""The load generator: a small closed-loop HTTP/1.1 client on raw asyncio (uvloop when installed).

``concurrency`` keep-alive connections each send one structured CloudEvent, wait for the answer,
and send the next; every request carries a fresh event id. Requests that start after the warm-up
and finish inside the measured window count: accepted events per second is the number of 2xx
answers in the window divided by its length; latency is from writing the request to reading the
whole answer. Prints one JSON object on stdout.

    python -m benchmarks.ingress.client --port 8701 --path /api/v1/events --key andon_... -c 32 -d 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field

try:  # the client must not be the bottleneck: uvloop when the venv has it (litestar[standard] does)
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed with litestar[standard]
    uvloop = None  # type: ignore[assignment]

EVENT = (
    b'{"specversion":"1.0","id":"%s","source":"urn:bench:press-line","type":"dev.andon.machine.alarm.v1",'
    b'"datacontenttype":"application/json","severity":"high",'
    b'"data":{"code":"E42","message":"Over temperature","value":96.5}}'
)


@dataclass
class Tally:
    latencies_ns: list[int] = field(default_factory=list)
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


def _request(host: str, port: int, path: str, key: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/cloudevents+json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    number: int, args: argparse.Namespace, tag: str, measure_from: int, measure_to: int, tally: Tally
) -> None:
    reader, writer = await asyncio.open_connection(args.host, args.port)
    seq = 0
    try:
        while True:
            seq += 1
            body = EVENT % f"{tag}-{number}-{seq}".encode()
            payload = _request(args.host, args.port, args.path, args.key, body)
            started = time.perf_counter_ns()
            if started >= measure_to:
                return
            writer.write(payload)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                tally.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(args.host, args.port)
                continue
            ended = time.perf_counter_ns()
            if started >= measure_from and ended <= measure_to:
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    tally.ok += 1
                    tally.latencies_ns.append(ended - started)
    finally:
        writer.close()


def percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index] / 1e6


async def run(args: argparse.Namespace) -> dict[str, object]:
    tag = args.tag or f"b{time.time_ns():x}"
    now = time.perf_counter_ns()
    measure_from = now + int(args.warmup * 1e9)
    measure_to = measure_from + int(args.duration * 1e9)
    tally = Tally()
    cpu_before = time.process_time()
    await asyncio.gather(*(_connection(n, args, tag, measure_from, measure_to, tally) for n in range(args.concurrency)))
    cpu = time.process_time() - cpu_before
    latencies = sorted(tally.latencies_ns)
    return {
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "accepted": tally.ok,
        "events_per_s": round(tally.ok / args.duration, 1),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(latencies[-1] / 1e6, 2) if latencies else None,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": tally.errors,
        # Share of one core the client itself used over warm-up and window: it shares the machine.
        "client_cpu_share": round(cpu / (args.warmup + args.duration), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/api/v1/events")
    parser.add_argument("--key", default="none")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=15.0)
    parser.add_argument("-w", "--warmup", type=float, default=3.0)
    parser.add_argument("--tag", default="", help="event id prefix (default: unique per run)")
    args = parser.parse_args(argv)
    result = uvloop.run(run(args)) if uvloop is not None else asyncio.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
