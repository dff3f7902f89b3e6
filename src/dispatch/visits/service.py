"""Visits, derived from the job's status changes; return visits; first-time-fix figures.

Every status change goes through ``jobs.flows.change_status`` (and a job parked for parts through
``parts.service``); both call ``track`` here with the job locked, so a visit is opened, timed and
ended in the same transaction as the status change that caused it.

- ``en_route`` or ``on_site`` without a visit in progress starts one (number n + 1); a visit
  planned by a return visit is started by the first tap.
- ``completed`` ends it ``fixed``; ``waiting_parts`` ends it ``needs_parts``; ``unable`` ends it
  ``not_fixed`` or ``customer_absent`` (the phone says which); ``cancelled`` ends a started
  visit ``not_fixed`` and drops one that was only planned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session

from dispatch.assignment import service as assignment
from dispatch.auth.service import Caller
from dispatch.config import Settings
from dispatch.errors import Conflict
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.jobs import service as jobs
from dispatch.jobs.lifecycle import FINISHED, JobStatus
from dispatch.jobs.models import Job
from dispatch.sla import service as sla
from dispatch.visits.models import RETURN_REASONS, Visit, VisitOutcome, VisitReason


def of_job(session: Session, job_id: int) -> list[Visit]:
    return list(session.scalars(select(Visit).where(Visit.job_id == job_id).order_by(Visit.number)))


def latest(session: Session, job_id: int) -> Visit | None:
    return session.scalar(select(Visit).where(Visit.job_id == job_id).order_by(Visit.number.desc()).limit(1))


def current(session: Session, job_id: int) -> Visit | None:
    """The visit in progress or planned (not ended), if any."""
    found = latest(session, job_id)
    return found if found is not None and found.outcome is None else None


def _next_reason(previous: Visit | None) -> VisitReason:
    return VisitReason.first if previous is None else VisitReason.follow_up


def _open(
    session: Session,
    job: Job,
    *,
    actor: str,
    now: datetime,
    reason: VisitReason | None = None,
    technician_id: int | None = None,
    note: str | None = None,
) -> Visit:
    previous = latest(session, job.id)  # type: ignore[arg-type]
    visit = Visit(
        job_id=job.id,
        number=(previous.number + 1) if previous else 1,  # type: ignore[arg-type]
        technician_id=technician_id,
        reason=reason or _next_reason(previous),
        planned_at=now,
        note=note,
        created_by=actor,
    )
    session.add(visit)
    session.flush()
    return visit


def _end(
    session: Session,
    job: Job,
    visit: Visit,
    *,
    outcome: VisitOutcome,
    at: datetime,
    actor: str,
    now: datetime,
    note: str | None = None,
) -> None:
    visit.left_at, visit.outcome = at, outcome
    if note:
        visit.note = note
    session.flush()
    events.record(
        session=session,
        job_id=job.id,
        type=EventType.visit_ended,
        actor=actor,
        now=now,
        occurred_at=at,  # type: ignore[arg-type]
        visit_number=visit.number,
        visit_id=visit.id,
        outcome=outcome.value,
        technician_id=visit.technician_id,
        en_route_at=visit.en_route_at.isoformat() if visit.en_route_at else None,
        on_site_at=visit.on_site_at.isoformat() if visit.on_site_at else None,
    )


def track(
    *,
    session: Session,
    job: Job,
    technician_id: int | None,
    at: datetime,
    actor: str,
    now: datetime,
    outcome: str | None = None,
    note: str | None = None,
) -> Visit | None:
    """Bring the job's visits in line with the status it has just taken. The caller holds the
    job's lock. ``technician_id`` is who held the job when the change was made (``unable``
    clears it from the job); ``at`` is the device time of the change."""
    status = job.status
    visit = current(session, job.id)  # type: ignore[arg-type]
    if status in (JobStatus.en_route, JobStatus.on_site):
        started = visit is not None and visit.started
        if visit is None:
            visit = _open(session, job, actor=actor, now=now, technician_id=technician_id)
        visit.technician_id = technician_id
        if status is JobStatus.en_route:
            visit.en_route_at = at
        else:
            visit.on_site_at = at
        session.flush()
        if not started:
            events.record(
                session=session,
                job_id=job.id,
                type=EventType.visit_started,
                actor=actor,
                now=now,
                occurred_at=at,  # type: ignore[arg-type]
                visit_number=visit.number,
                visit_id=visit.id,
                reason=visit.reason.value,
                technician_id=technician_id,
            )
        return visit
    if status is JobStatus.completed:
        if visit is None:  # a job that was on site before visits were recorded
            visit = _open(session, job, actor=actor, now=now, technician_id=technician_id)
        _end(session, job, visit, outcome=VisitOutcome.fixed, at=at, actor=actor, now=now)
        return visit
    if visit is None:
        return None
    if not visit.started:
        # A planned visit nobody has set off for: it waits for whoever goes, or goes with the job.
        if status is JobStatus.cancelled:
            session.delete(visit)
            session.flush()
            return None
        if status is JobStatus.unable:
            visit.technician_id = None
        return visit
    if status is JobStatus.waiting_parts:
        _end(session, job, visit, outcome=VisitOutcome.needs_parts, at=at, actor=actor, now=now)
    elif status is JobStatus.unable:
        _end(
            session,
            job,
            visit,
            outcome=VisitOutcome(outcome or VisitOutcome.not_fixed.value),
            at=at,
            actor=actor,
            now=now,
            note=note,
        )
    elif status is JobStatus.cancelled:
        _end(session, job, visit, outcome=VisitOutcome.not_fixed, at=at, actor=actor, now=now, note="job cancelled")
    return visit


def list_visits(*, session: Session, job_id: int, caller: Caller) -> list[Visit]:
    jobs.get(session=session, job_id=job_id, caller=caller)
    return of_job(session, job_id)


def require_visit(session: Session, job: Job) -> Visit:
    """The latest visit of a job, or 409: photos, sign-offs and callbacks belong to a visit."""
    visit = latest(session, job.id)  # type: ignore[arg-type]
    if visit is None or not (visit.started or visit.outcome is not None):
        raise Conflict(
            f"job {job.id} has had no visit yet; the technician starts one with en_route or on_site", code="no-visit"
        )
    return visit


# --- return visits ----------------------------------------------------------------------------


def plan_return_visit(
    *,
    session: Session,
    job_id: int,
    reason: VisitReason,
    note: str | None,
    caller: Caller,
    now: datetime,
    settings: Settings,
) -> tuple[Job, Visit]:
    """Reopen a completed or closed job with a new visit. The technician of the last visit goes
    back if they can (continuity, as when parts arrive), else the nearest available one, else the
    job is ``ready`` for a dispatcher. The deadline stays the first one: the fault was not fixed
    within it after all."""
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    if job.status not in FINISHED:
        raise Conflict(
            f"job {job_id} is {job.status.value}; only a completed or closed job gets a return visit",
            code="not-returnable",
            current_status=job.status.value,
        )
    last = latest(session, job.id)  # type: ignore[arg-type]
    previous_technician = (last.technician_id if last and last.technician_id else None) or job.technician_id
    previous_status = job.status
    visit = _open(session, job, actor=caller.actor, now=now, reason=reason, note=note)
    job.completed_at, job.closed_at = None, None
    job.return_visits += 1
    sla.reopened(session, job, now)
    events.record(
        session=session,
        job_id=job.id,
        type=EventType.return_visit_planned,
        actor=caller.actor,
        now=now,  # type: ignore[arg-type]
        visit_number=visit.number,
        visit_id=visit.id,
        reason=reason.value,
        note=note,
        **{"from": previous_status.value},
        previous_technician_id=previous_technician,
    )
    _send(session, job, visit, previous_technician, now, settings)
    return job, visit


def _send(session: Session, job: Job, visit: Visit, previous: int | None, now: datetime, settings: Settings) -> None:
    visit.technician_id = assignment.send_back(
        session=session, job=job, previous=previous, now=now, settings=settings, visit_number=visit.number
    )


# --- first-time fix and return visits, for the KPIs --------------------------------------------


@dataclass(frozen=True)
class FixRates:
    """Jobs first reported fixed in the period, and how many of them stayed fixed the first time.

    ``first_time_fixed``: the very first visit ended fixed and the job never needed a return visit.
    ``with_return_visit``: the job was reopened after completion at least once (any reason).
    Rates are None when no job was fixed in the period."""

    jobs: int
    first_time_fixed: int
    with_return_visit: int

    @property
    def first_time_fix_rate(self) -> float | None:
        return self.first_time_fixed / self.jobs if self.jobs else None

    @property
    def return_visit_rate(self) -> float | None:
        return self.with_return_visit / self.jobs if self.jobs else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "first_time_fixed": self.first_time_fixed,
            "with_return_visit": self.with_return_visit,
            "first_time_fix_rate": self.first_time_fix_rate,
            "return_visit_rate": self.return_visit_rate,
        }


def fix_rates(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    technician_id: int | None = None,
    outlet_id: int | None = None,
) -> FixRates:
    """First-time-fix and return-visit figures for jobs whose first ``fixed`` visit ended in
    [since, until). ``technician_id`` counts the jobs that technician first fixed; ``outlet_id``
    the jobs of one outlet. Figures for a past period can still change: a callback next week may
    send a technician back to a job fixed this week."""
    first_fixed = (
        select(Visit.job_id, func.min(Visit.number).label("number"))
        .where(Visit.outcome == VisitOutcome.fixed)
        .group_by(Visit.job_id)
        .subquery()
    )
    fixed_visit = (
        select(Visit.job_id, Visit.number, Visit.technician_id)
        .join(first_fixed, and_(first_fixed.c.job_id == Visit.job_id, first_fixed.c.number == Visit.number))
        .where(Visit.left_at >= since, Visit.left_at < until)
    )
    if technician_id is not None:
        fixed_visit = fixed_visit.where(Visit.technician_id == technician_id)
    if outlet_id is not None:
        fixed_visit = fixed_visit.join(Job, Job.id == Visit.job_id).where(Job.outlet_id == outlet_id)
    population = fixed_visit.subquery()
    returned = exists().where(Visit.job_id == population.c.job_id, Visit.reason.in_(list(RETURN_REASONS)))
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((and_(population.c.number == 1, ~returned), 1), else_=0)), 0),
            func.coalesce(func.sum(case((returned, 1), else_=0)), 0),
        ).select_from(population)
    ).one()
    return FixRates(jobs=int(row[0]), first_time_fixed=int(row[1]), with_return_visit=int(row[2]))
