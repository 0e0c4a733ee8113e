"""Sending step messages to the broker, after the transaction that created the steps committed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dramatiq
import structlog
from dramatiq import Message

from andon.platform.engine.executor import STEP_ACTOR, STEP_QUEUE, Send, StepMessage
from andon.platform.events.relay import enqueue_all

log = structlog.get_logger("andon.engine")


def step_message(message: StepMessage) -> Message[object]:
    return Message(queue_name=STEP_QUEUE, actor_name=STEP_ACTOR, args=tuple(message.args()), kwargs={}, options={})


def broker_sender(broker: dramatiq.Broker) -> Send:
    async def send(messages: Sequence[StepMessage]) -> None:
        if not messages:
            return
        batch = [step_message(m) for m in messages]
        try:
            await asyncio.to_thread(enqueue_all, broker, batch)
        except Exception as exc:  # the broker is away: the steps stay queued and the sweep sends them
            log.warning("step_messages_not_sent", count=len(batch), error=f"{type(exc).__name__}: {exc}")

    return send
