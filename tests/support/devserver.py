"""``andon dev`` in its own process, as a newcomer starts it, for end-to-end and browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_dev(data_dir: Path, *extra: str, port: int | None = None) -> Iterator[str]:
    """Start ``andon dev`` on a free port (without the caller's ANDON_* settings), wait until it is
    ready, yield its base URL, and stop it with Ctrl-C as a person would."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANDON_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "andon", "dev", "--port", str(port), "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"andon dev exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("andon dev never became ready")
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
