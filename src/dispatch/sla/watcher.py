"""The SLA watcher: fires each checkpoint once, and predicts breaches before they happen.

Firing is a conditional UPDATE (``fired_at IS NULL AND resolved_at IS NULL``) in the same
transaction as the timeline event it produces, so a checkpoint is recorded exactly once however
many watchers run, and a watcher that was down fires everything it missed when it starts
(the event's ``occurred_at`` is the moment the job became at risk, not the moment we noticed).

Lock order is the one every status change uses: the job row first, then its checkpoints. On
PostgreSQL a watcher skips jobs another transaction holds (SKIP LOCKED) and fires them on its
next pass; only one watcher at a time predicts breaches (an advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from dispatch.assignment import service as assignment
from dispatch.auth.service import SYSTEM
from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.geo import haversine_km
from dispatch.jobs.lifecycle import DISPATCHABLE, HOLDS_CAPACITY, OPEN
from dispatch.jobs.models import Job
from dispatch.sla.models import Level, SlaCheckpoint
from dispatch.technicians import shifts
from dispatch.technicians.models import Technician

log = logging.getLogger(__name__)

BATCH = 1000
EVENT_OF = {
    Level.warning: EventType.sla_warning,
    Level.at_risk: EventType.sla_at_risk,
    Level.breached: EventType.sla_breached,
    Level.no_show: EventType.sla_no_show,
}
# Predictions this watcher owns; others (parts late) belong to the parts domain.
OVERLOADED = "technician_overloaded"
UNREACHABLE = "cannot_arrive_in_time"
OURS = (OVERLOADED, UNREACHABLE)
_PREDICT_LOCK = 0x5_1A_0001  # pg advisory lock key: one predictor at a time


def fire_due(
    session: Session, now: datetime, *, batch: int = BATCH, job_id: int | None = None, upto: datetime | None = None
) -> int:
    """Fire up to ``batch`` checkpoints due by ``upto`` (default now), each with its timeline
    event; only ``job_id``'s if given. Returns how many."""
    stmt = (
        select(SlaCheckpoint.id, SlaCheckpoint.job_id)
        .join(Job, Job.id == SlaCheckpoint.job_id)
        .where(
            SlaCheckpoint.fires_at <= (upto or now),
            SlaCheckpoint.fired_at.is_(None),
            SlaCheckpoint.resolved_at.is_(None),
            Job.paused_at.is_(None),
        )  # a paused job's checkpoints move when it resumes
        .order_by(SlaCheckpoint.fires_at, SlaCheckpoint.id)
        .limit(batch)
    )
    if job_id is not None:
        stmt = stmt.where(SlaCheckpoint.job_id == job_id)
    due = list(session.execute(stmt))
    if not due:
        return 0
    locked = set(
        session.scalars(
            select(Job.id)
            .where(Job.id.in_(sorted({job_id for _, job_id in due})))
            .order_by(Job.id)
            .with_for_update(skip_locked=True)
        )
    )
    ids = [cid for cid, job_id in due if job_id in locked]
    if not ids:
        return 0
    fired = list(
        session.execute(
            update(SlaCheckpoint)
            .where(SlaCheckpoint.id.in_(ids), SlaCheckpoint.fired_at.is_(None), SlaCheckpoint.resolved_at.is_(None))
            .values(fired_at=now)
            .returning(
                SlaCheckpoint.id,
                SlaCheckpoint.job_id,
                SlaCheckpoint.deadline,
                SlaCheckpoint.level,
                SlaCheckpoint.ratio,
                SlaCheckpoint.audience,
                SlaCheckpoint.fires_at,
            )
            .execution_options(synchronize_session=False)
        )
    )
    by_job: dict[int, list[dict[str, Any]]] = {}
    for row in sorted(fired, key=lambda r: (r.job_id, r.fires_at, r.id)):
        by_job.setdefault(row.job_id, []).append(
            events.entry(
                EVENT_OF[Level(row.level)],
                SYSTEM.actor,
                occurred_at=row.fires_at,
                checkpoint_id=row.id,
                deadline=str(getattr(row.deadline, "value", row.deadline)),
                ratio=row.ratio,
                notify=str(getattr(row.audience, "value", row.audience)),
            )
        )
    events.record_for_jobs(session=session, now=now, entries=by_job)
    return len(fired)


@dataclass
class Predictions:
    set: int = 0
    cleared: int = 0


def _overloaded(session: Session, now: datetime, settings: Settings) -> set[int]:
    """Jobs whose technician cannot get through the work ahead of them in time: taking their
    jobs in deadline order, each costing ``sla_hours_per_job`` of the technician's shift hours
    (no shift hours: any hour), the job ends after its deadline."""
    per_job = timedelta(hours=settings.sla_hours_per_job)
    rows = session.execute(
        select(
            Job.id,
            Job.technician_id,
            Job.next_due_at,
            Technician.shift_start,
            Technician.shift_end,
            Technician.shift_days,
            Technician.timezone,
        )
        .join(Technician, Technician.id == Job.technician_id)
        .where(
            Job.status.in_([s.value for s in HOLDS_CAPACITY]),
            Job.technician_id.is_not(None),
            Job.next_due_at.is_not(None),
            Job.paused_at.is_(None),
        )
        .order_by(Job.technician_id, Job.next_due_at, Job.id)
    )
    late: set[int] = set()
    patterns: dict[tuple[Any, ...], shifts.WorkingTime] = {}
    for _, group in itertools.groupby(rows, key=lambda row: row.technician_id):
        queue = list(group)
        first = queue[0]
        pattern = (first.shift_start, first.shift_end, first.shift_days, first.timezone)
        if pattern not in patterns:
            patterns[pattern] = shifts.WorkingTime(
                now, start=first.shift_start, end=first.shift_end, days=first.shift_days, timezone=first.timezone
            )
        finishes = patterns[pattern].finish_times(per_job, len(queue))
        late.update(row.id for row, finish in zip(queue, finishes, strict=True) if finish > row.next_due_at.timestamp())
    return late


def _unreachable(session: Session, now: datetime, settings: Settings) -> set[int]:
    """Jobs with an arrival deadline still ahead that nobody can reach in time at the
    configured travel speed: the assigned technician from where they are, or, for a job
    nobody has yet, the nearest available technician."""
    speed = settings.sla_travel_speed_kmh
    rows = session.execute(
        select(
            Job.id,
            Job.status,
            Job.lat,
            Job.lon,
            Job.product_category,
            Job.arrival_due_at,
            Technician.lat,
            Technician.lon,
        )
        .outerjoin(Technician, Technician.id == Job.technician_id)
        .where(
            Job.arrival_due_at.is_not(None),
            Job.arrived_at.is_(None),
            Job.arrival_due_at > now,
            Job.status.in_([s.value for s in OPEN]),
            Job.paused_at.is_(None),
            Job.lat.is_not(None),
            # Implied (until someone is on site the next deadline is the arrival), and lets the
            # database read the open jobs' index instead of every job ever received.
            Job.next_due_at > now,
        )
    )
    late: set[int] = set()
    waiting: dict[str, list[tuple[int, float, float, float]]] = {}
    for job_id, status, lat, lon, skill, arrival_due_at, tech_lat, tech_lon in rows:
        hours_left = (arrival_due_at - now).total_seconds() / 3600
        if status in HOLDS_CAPACITY and tech_lat is not None:
            if haversine_km(tech_lat, tech_lon, lat, lon) / speed > hours_left:
                late.add(job_id)
        elif status in DISPATCHABLE:
            waiting.setdefault(skill, []).append((job_id, lat, lon, hours_left))
    # Jobs nobody has yet: who is available is the same for every job with the skill, so it is
    # read once per skill and the distances are taken here (great-circle: this is a warning at
    # an average speed, not a dispatch).
    for skill, jobs_of_skill in waiting.items():
        free = [(r.lat, r.lon) for r in assignment.available_now(session=session, skill=skill, now=now)]
        for job_id, lat, lon, hours_left in jobs_of_skill:
            reach = speed * hours_left
            if not any(haversine_km(lat, lon, t_lat, t_lon) <= reach for t_lat, t_lon in free):
                late.add(job_id)
    return late


def predict(session: Session, now: datetime, settings: Settings) -> Predictions | None:
    """Set and clear this watcher's breach predictions. None if another watcher is at it."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _PREDICT_LOCK}):
        return None
    wanted: dict[int, str] = {job_id: UNREACHABLE for job_id in _unreachable(session, now, settings)}
    for job_id in _overloaded(session, now, settings):
        wanted.setdefault(job_id, OVERLOADED)
    # Open jobs only (a job that ends drops this watcher's prediction, sla.service): read
    # through the open jobs' index, not the whole table.
    current = dict(
        session.execute(
            select(Job.id, Job.predicted_breach).where(Job.predicted_breach.in_(OURS), Job.next_due_at.is_not(None))
        ).all()
    )
    result = Predictions()
    changes: dict[str | None, list[int]] = {}
    for job_id in sorted(set(wanted) | set(current)):
        if wanted.get(job_id) != current.get(job_id):
            changes.setdefault(wanted.get(job_id), []).append(job_id)
    for reason, job_ids in changes.items():
        # One conditional UPDATE per reason: a reason of another domain (a late part) is never
        # overwritten, and RETURNING says which jobs did change.
        changed = session.scalars(
            update(Job)
            .where(Job.id.in_(job_ids), or_(Job.predicted_breach.is_(None), Job.predicted_breach.in_(OURS)))
            .values(predicted_breach=reason, version=Job.version + 1, updated_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).all()
        for job_id in sorted(changed):
            if reason is None:
                result.cleared += 1
                events.record(
                    session=session,
                    job_id=job_id,
                    type=EventType.breach_no_longer_predicted,
                    actor=SYSTEM.actor,
                    now=now,
                    reason=current[job_id],
                )
            else:
                result.set += 1
                events.record(
                    session=session,
                    job_id=job_id,
                    type=EventType.breach_predicted,
                    actor=SYSTEM.actor,
                    now=now,
                    reason=reason,
                )
    return result


@dataclass
class Pass:
    fired: int
    predicted: int
    cleared: int
    seconds: float


def run_pass(database: Database, now: Callable[[], datetime], settings: Settings) -> Pass:
    """One full pass: every due checkpoint (in batches, each its own transaction), then predictions."""
    started = time.perf_counter()
    fired = 0
    while True:
        with database.transaction() as session:
            count = fire_due(session, now())
        fired += count
        if count < BATCH:
            break
    with database.transaction() as session:
        predictions = predict(session, now(), settings) or Predictions()
    return Pass(fired, predictions.set, predictions.cleared, time.perf_counter() - started)


async def watch(
    database: Database, now: Callable[[], datetime], settings: Settings, stop: asyncio.Event | None = None
) -> None:
    """Run passes forever (until ``stop``), catching up first. Errors are logged and retried:
    a watcher that dies quietly is how breaches get lost."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            result: Any = await asyncio.to_thread(run_pass, database, now, settings)
            if result.fired or result.predicted or result.cleared:
                log.info(
                    "sla watcher: fired %d, predicted %d, cleared %d in %.2fs",
                    result.fired,
                    result.predicted,
                    result.cleared,
                    result.seconds,
                )
        except Exception:
            log.exception("sla watcher pass failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.sla_watcher_interval_seconds)


def pending_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(SlaCheckpoint)
            .where(SlaCheckpoint.fired_at.is_(None), SlaCheckpoint.resolved_at.is_(None))
        )
        or 0
    )
