"""API views assembled from several engine rows (a run's SLA and escalation picture)."""

from __future__ import annotations

from collections.abc import Sequence

from andon.platform.api.schemas import to_read
from andon.platform.engine.models import SLA_TIMERS, Escalation, EscalationPage, SlaBreach, Timer, WorkflowRun
from andon.platform.engine.schemas import (
    EscalationPageRead,
    EscalationRead,
    RunEscalations,
    RunRead,
    SlaBreachRead,
    SlaDueRead,
)

_SLA_KIND = {timer: kind for kind, timer in SLA_TIMERS.items()}


def _due_state(timer: Timer) -> str:
    if timer.fired_at is None:
        return "pending"
    # A timer cancelled early (the run acknowledged or cancelled) was marked before it fell due.
    return "judged" if timer.fired_at >= timer.fire_at else "cancelled"


def escalations_view(
    run: WorkflowRun,
    dues: Sequence[Timer],
    breaches: Sequence[SlaBreach],
    ladders: Sequence[Escalation],
    pages: Sequence[EscalationPage],
) -> RunEscalations:
    reads = []
    for ladder in ladders:
        read = to_read(ladder, EscalationRead)
        read.sent = [to_read(p, EscalationPageRead) for p in pages if p.escalation_id == ladder.id]
        reads.append(read)
    return RunEscalations(
        run=to_read(run, RunRead),
        sla=[
            SlaDueRead(policy=t.step_key, kind=_SLA_KIND[t.kind], due_at=t.fire_at, state=_due_state(t)) for t in dues
        ],
        breaches=[to_read(b, SlaBreachRead) for b in breaches],
        escalations=reads,
    )
