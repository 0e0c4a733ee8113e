"""A system that answers 429 with Retry-After is left alone that long: the step's retry waits at
least what it asked (never longer than the policy's longest wait), and otherwise follows its backoff."""

from __future__ import annotations

import pytest

from andon.platform.engine.capabilities import CapabilityError
from andon.platform.engine.definition import RetryPolicy
from andon.platform.engine.executor import retry_delay

POLICY = RetryPolicy(initial_seconds=1.0, backoff=2.0, max_seconds=60.0, jitter=0.0)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, None, 1.0),  # the policy's own backoff
        (3, None, 4.0),
        (1, 30.0, 30.0),  # the system asked for longer: it gets it
        (4, 2.0, 8.0),  # the backoff is already longer
        (1, 3600.0, 60.0),  # but never beyond the policy's longest wait
    ],
)
def test_a_retry_waits_at_least_what_the_system_asked(attempt: int, retry_after: float | None, expected: float) -> None:
    assert retry_delay(POLICY, attempt, CapabilityError("busy", retry_after=retry_after)) == expected
