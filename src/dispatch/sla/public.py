"""The SLA queues as the API shows them: built here and nowhere else."""

from __future__ import annotations

from datetime import datetime

from dispatch.jobs import service as jobs
from dispatch.sla import states
from dispatch.sla.models import SlaCheckpoint
from dispatch.sla.schemas import AtRiskPublic, EscalationPublic
from dispatch.sla.service import AtRisk


def at_risk(row: AtRisk, now: datetime) -> AtRiskPublic:
    job = row.job
    sla = jobs.sla_public(job, now)
    return AtRiskPublic(
        job_id=job.id,
        status=job.status,
        priority=job.priority,
        policy=job.sla_policy,  # type: ignore[arg-type]
        technician_id=job.technician_id,
        customer_name=job.customer_name,
        customer_address=job.customer_address,
        state="breached" if sla.state is states.SlaState.breached else "at_risk",
        deadline=sla.next_deadline or "completion",
        due_at=job.next_due_at,  # type: ignore[arg-type]
        time_left_seconds=sla.time_left_seconds,
        reasons=row.reasons,
        paused_since=job.paused_at,
    )


def escalation(checkpoint: SlaCheckpoint) -> EscalationPublic:
    return EscalationPublic(
        id=checkpoint.id,
        job_id=checkpoint.job_id,
        deadline=checkpoint.deadline,
        level=checkpoint.level,  # type: ignore[arg-type]
        notify=checkpoint.audience,
        fires_at=checkpoint.fires_at,
        fired_at=checkpoint.fired_at,  # type: ignore[arg-type]
        acknowledged_at=checkpoint.acknowledged_at,
        acknowledged_by=checkpoint.acknowledged_by,
    )
