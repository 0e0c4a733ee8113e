"""The baseline: a naive Dramatiq worker process whose one actor does one INSERT per message.

The same Redis broker (URL and namespace) as ``andon worker``, the same worker-thread model
(``dramatiq.Worker`` with N threads, each message acked after the actor returns), and one
autocommitted ``INSERT`` through a psycopg connection per worker thread. No tenant scope, no claim,
no outbox: the floor of "a message in, a row out" on this machine.

    BENCH_NAIVE_DSN=postgresql://... BENCH_NAIVE_REDIS=redis://127.0.0.1:6379/7 \
        python -m benchmarks.engine.naive_worker --threads 2 --namespace bench-engine
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

import dramatiq
import psycopg
from dramatiq.brokers.redis import RedisBroker

ACTOR = "naive_insert"
QUEUE = "naive"
TABLE = """
CREATE TABLE IF NOT EXISTS bench_naive (
    id bigserial PRIMARY KEY,
    tag text NOT NULL,
    n integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
INSERT = "INSERT INTO bench_naive (tag, n) VALUES (%s, %s)"


def build_broker(url: str, namespace: str) -> dramatiq.Broker:
    broker: dramatiq.Broker = RedisBroker(url=url, namespace=namespace)  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)
    return broker


def message(tag: str, n: int) -> dramatiq.Message[object]:
    return dramatiq.Message(queue_name=QUEUE, actor_name=ACTOR, args=(tag, n), kwargs={}, options={})


def declare(broker: dramatiq.Broker, dsn: str) -> None:
    local = threading.local()

    def naive_insert(tag: str, n: int) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(dsn, autocommit=True)
        conn.execute(INSERT, (tag, n))

    dramatiq.Actor(naive_insert, broker=broker, actor_name=ACTOR, queue_name=QUEUE, priority=0, options={})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--namespace", default="bench-engine")
    args = parser.parse_args(argv)
    broker = build_broker(os.environ["BENCH_NAIVE_REDIS"], args.namespace)
    declare(broker, os.environ["BENCH_NAIVE_DSN"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = dramatiq.Worker(broker, worker_threads=args.threads, worker_timeout=200)
    worker.start()
    stop.wait()
    worker.stop()


if __name__ == "__main__":
    main()
