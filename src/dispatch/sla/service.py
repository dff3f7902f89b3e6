"""The SLA rules that act on a job: arrival and completion against the deadlines, pauses, the
at-risk queue and the supervisors' escalations. Plain functions over a session; they flush,
never commit. The clock rules themselves are in ``sla.states``; firing checkpoints and
predicting breaches in ``sla.watcher``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dispatch.auth.service import SYSTEM, Caller
from dispatch.errors import Conflict, NotFound, Unprocessable
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.jobs import service as jobs
from dispatch.jobs.lifecycle import OPEN, JobStatus
from dispatch.jobs.models import Job
from dispatch.paging import Cut, Keyset
from dispatch.schemas import Id, Timestamp
from dispatch.sla import policies, states, watcher
from dispatch.sla.models import Audience, Deadline, SlaCheckpoint, SlaPause


def resolve(session: Session, job_id: int, now: datetime, deadlines: list[Deadline] | None = None) -> None:
    """A deadline that is met (or a job that ends) makes its pending checkpoints moot."""
    stmt = update(SlaCheckpoint).where(
        SlaCheckpoint.job_id == job_id, SlaCheckpoint.fired_at.is_(None), SlaCheckpoint.resolved_at.is_(None)
    )
    if deadlines is not None:
        stmt = stmt.where(SlaCheckpoint.deadline.in_([d.value for d in deadlines]))
    session.execute(stmt.values(resolved_at=now).execution_options(synchronize_session=False))


def after_status_change(session: Session, job: Job, *, at: datetime, now: datetime) -> None:
    """Hold a job's new status against its deadlines. ``at`` is when it happened (device time)."""
    arrives = job.status is JobStatus.on_site and job.arrived_at is None
    if arrives or job.status in (JobStatus.completed, JobStatus.cancelled):
        # What came due while the job was still open fires before this news makes it moot: the
        # watcher may not have passed since (or be down), and a breach is never lost.
        watcher.fire_due(session, now, job_id=job.id, upto=min(at, now))  # type: ignore[arg-type]
    if arrives:
        job.arrived_at = at
        job.arrival_missed = job.arrival_due_at is not None and at > job.arrival_due_at
        policies.set_next(job)
        resolve(session, job.id, now, [Deadline.arrival, Deadline.appointment])  # type: ignore[arg-type]
        if job.arrival_missed:
            events.record(
                session=session,
                job_id=job.id,
                type=EventType.sla_arrival_missed,
                actor=SYSTEM.actor,
                now=now,  # type: ignore[arg-type]
                occurred_at=at,
                arrival_due_at=job.arrival_due_at.isoformat(),
            )  # type: ignore[union-attr]
    elif job.status is JobStatus.completed:
        job.resolution_seconds = int((job.completed_at - job.reported_at).total_seconds())  # type: ignore[operator]
        _close(session, job, now)
    elif job.status is JobStatus.cancelled:
        _close(session, job, now)
    session.flush()


def reopened(session: Session, job: Job, now: datetime) -> None:
    """A return visit: the job races its completion deadline again, the first one (the fault was
    not fixed within it after all), so a late return shows as breached at once.

    The completion checkpoints that the first fix made moot are armed again so a breach is never
    lost: those still ahead fire on time; of those already passed only the highest fires, at
    once and stamped now (a return after the deadline is one breach, not a warning, an at-risk
    and a breach back-dated to when the job was fixed). Checkpoints that fired stay fired."""
    job.resolution_seconds = None
    policies.set_next(job)
    moot = session.scalars(
        select(SlaCheckpoint)
        .where(
            SlaCheckpoint.job_id == job.id,
            SlaCheckpoint.deadline == Deadline.completion.value,
            SlaCheckpoint.fired_at.is_(None),
            SlaCheckpoint.resolved_at.is_not(None),
        )
        .order_by(SlaCheckpoint.fires_at, SlaCheckpoint.id)
    ).all()
    passed = [c for c in moot if c.fires_at <= now]
    for checkpoint in moot:
        if checkpoint.fires_at > now:
            checkpoint.resolved_at = None
    if passed:
        passed[-1].resolved_at, passed[-1].fires_at = None, now


def _close(session: Session, job: Job, now: datetime) -> None:
    """A job that ends races no deadline, and the watcher's predictions about it are moot (the
    watcher reads only open jobs)."""
    job.next_due_at = job.next_at_risk_at = None
    if job.predicted_breach in watcher.OURS:
        job.predicted_breach = None
    resolve(session, job.id, now)  # type: ignore[arg-type]


# --- pauses --------------------------------------------------------------------------------


def pause(*, session: Session, job_id: int, reason: str, note: str | None, caller: Caller, now: datetime) -> Job:
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    policy = policies.get(session, job.sla_policy)
    if reason not in policy.pause_reasons:
        raise Unprocessable(
            f"the {policy.name.value} policy does not let the clock stop for {reason!r}",
            code="pause-not-allowed",
            allowed=list(policy.pause_reasons),
            errors=[
                {"loc": ["body", "reason"], "msg": "not a pause reason of this job's policy", "type": "value_error"}
            ],
        )
    if job.status not in OPEN:
        raise Conflict(f"job {job_id} is {job.status.value}; its clock has stopped for good", code="job-closed")
    if job.paused_at is not None:
        raise Conflict(
            f"job {job_id}'s clock is already paused", code="already-paused", paused_since=job.paused_at.isoformat()
        )
    jobs.count_time(job, now)
    job.paused_at = now
    jobs.touch(job, now)
    session.add(SlaPause(job_id=job.id, reason=reason, note=note, started_at=now, started_by=caller.actor))  # type: ignore[arg-type]
    session.flush()
    events.record(
        session=session, job_id=job.id, type=EventType.sla_paused, actor=caller.actor, now=now, reason=reason, note=note
    )  # type: ignore[arg-type]
    return job


def resume(*, session: Session, job_id: int, caller: Caller, now: datetime) -> Job:
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    if job.paused_at is None:
        raise Conflict(f"job {job_id}'s clock is not paused", code="not-paused")
    resume_locked(session, job, actor=caller.actor, now=now)
    return job


def resume_locked(session: Session, job: Job, *, actor: str, now: datetime) -> None:
    """Start the clock again: every deadline not yet met moves on by the counted time paused."""
    started = job.paused_at
    assert started is not None
    hours_of = policies.calendar(policies.get(session, job.sla_policy))
    paused = policies.counted(started, now, hours_of)

    def later(moment: datetime) -> datetime:
        return moment + paused if hours_of is None else policies.after(moment, paused.total_seconds() / 3600, hours_of)

    jobs.count_time(job, now)  # the pause is the customer's time
    job.paused_at = None
    if job.completed_at is None:
        job.due_at, job.at_risk_at = later(job.due_at), later(job.at_risk_at)
    if job.arrival_due_at is not None and job.arrived_at is None:
        job.arrival_due_at, job.arrival_at_risk_at = later(job.arrival_due_at), later(job.arrival_at_risk_at)  # type: ignore[arg-type]
    policies.set_next(job)
    # The appointment is a fixed time agreed with the customer: a pause does not move it.
    for checkpoint in policies.pending_checkpoints(session, job.id):  # type: ignore[arg-type]
        if checkpoint.deadline is not Deadline.appointment:
            checkpoint.fires_at = later(checkpoint.fires_at)
    pause_row = session.scalar(select(SlaPause).where(SlaPause.job_id == job.id, SlaPause.ended_at.is_(None)))
    if pause_row is not None:
        pause_row.ended_at, pause_row.ended_by = now, actor
    jobs.touch(job, now)
    session.flush()
    events.record(
        session=session,
        job_id=job.id,
        type=EventType.sla_resumed,
        actor=actor,
        now=now,  # type: ignore[arg-type]
        paused_seconds=int(paused.total_seconds()),
        due_at=job.due_at.isoformat(),
        arrival_due_at=job.arrival_due_at.isoformat() if job.arrival_due_at else None,
    )


# --- the at-risk queue ---------------------------------------------------------------------


@dataclass(frozen=True)
class AtRisk:
    job: Job
    reasons: list[str]


# Emergencies first (urgency 0), then the nearest deadline: the (urgency, next_due_at, id) index.
AT_RISK: Keyset[Job] = Keyset(
    "at-risk", Annotated[int, Field(ge=0, le=1)], Timestamp, Id, key=lambda job: (job.urgency, job.next_due_at, job.id)
)
ESCALATIONS: Keyset[SlaCheckpoint] = Keyset("escalations", Id)


def at_risk(
    *,
    session: Session,
    caller: Caller,
    now: datetime,
    limit: int,
    cursor: str | None = None,
    breached_only: bool = False,
    technician_id: int | None = None,
) -> Cut[AtRisk]:
    """Open jobs at risk or breached: emergencies first, then the nearest deadline (the most
    overdue first). Walks the (urgency, next_due_at, id) index, so a page costs the same
    however many jobs are open."""
    stmt = jobs.visible(caller).where(states.at_risk_or_breached_sql(now))
    if breached_only:
        stmt = stmt.where(states.breached_sql(now))
    if technician_id is not None:
        stmt = stmt.where(Job.technician_id == technician_id)
    jobs_at_risk = AT_RISK.fetch(session, stmt, Job.urgency, Job.next_due_at, Job.id, cursor=cursor, limit=limit)
    return Cut([AtRisk(job, states.reasons(job, now)) for job in jobs_at_risk.items], jobs_at_risk.next_cursor)


# --- escalations ---------------------------------------------------------------------------


def escalations(
    *, session: Session, audience: Audience, limit: int, cursor: str | None, include_acknowledged: bool = False
) -> Cut[SlaCheckpoint]:
    stmt = select(SlaCheckpoint).where(SlaCheckpoint.audience == audience, SlaCheckpoint.fired_at.is_not(None))
    if not include_acknowledged:
        stmt = stmt.where(SlaCheckpoint.acknowledged_at.is_(None))
    return ESCALATIONS.fetch(session, stmt, SlaCheckpoint.id, cursor=cursor, limit=limit)


def acknowledge(
    *, session: Session, checkpoint_id: int, caller: Caller, now: datetime, note: str | None
) -> SlaCheckpoint:
    checkpoint = session.scalar(
        select(SlaCheckpoint)
        .where(SlaCheckpoint.id == checkpoint_id, SlaCheckpoint.fired_at.is_not(None))
        .with_for_update()
    )
    if checkpoint is None:
        raise NotFound(f"escalation {checkpoint_id} not found", code="escalation-not-found")
    if checkpoint.acknowledged_at is not None:
        raise Conflict(
            f"escalation {checkpoint_id} was acknowledged by {checkpoint.acknowledged_by}", code="already-acknowledged"
        )
    checkpoint.acknowledged_at, checkpoint.acknowledged_by = now, caller.actor
    session.flush()
    events.record(
        session=session,
        job_id=checkpoint.job_id,
        type=EventType.sla_escalation_acknowledged,
        actor=caller.actor,
        now=now,
        escalation_id=checkpoint.id,
        note=note,
    )
    return checkpoint
