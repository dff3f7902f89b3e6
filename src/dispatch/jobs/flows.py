"""Job intake as a workflow: place the customer, record the job, dispatch if set to."""

from __future__ import annotations

from datetime import datetime

import anyio.to_thread
from sqlalchemy.orm import Session

from dispatch.assignment import service as assignment
from dispatch.auth.service import SYSTEM, Caller
from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.errors import Conflict
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.geocoding import service as geocoding
from dispatch.geocoding.service import Geocoded
from dispatch.jobs import service as jobs
from dispatch.jobs.lifecycle import JobStatus
from dispatch.jobs.models import Job
from dispatch.jobs.schemas import JobCreate, StatusChange
from dispatch.parts import service as parts
from dispatch.sla import service as sla
from dispatch.visits import service as visits


def given_location(job_in: JobCreate) -> Geocoded | None:
    customer = job_in.customer
    if customer.lat is not None and customer.lon is not None:
        return Geocoded(customer.lat, customer.lon, cached=True)
    return None


async def place_customer(*, database: Database, settings: Settings, job_in: JobCreate) -> Geocoded | None:
    """Where the customer is: as given, or geocoded on a worker thread. Runs before the write
    transaction, as geocoding is a network call; None if the address could not be placed."""
    return given_location(job_in) or await anyio.to_thread.run_sync(
        lambda: geocoding.locate(database=database, settings=settings, address=job_in.customer.address)
    )


def receive(
    *,
    session: Session,
    job_in: JobCreate,
    placed: Geocoded | None,
    caller: Caller,
    now: datetime,
    settings: Settings,
) -> Job:
    """Record a repair request; with auto-dispatch on, the nearest available technician is
    chosen before the job is written, so it is saved already assigned (one insert, not two
    writes), and its timeline still reads created, then dispatched."""
    location = (placed.lat, placed.lon) if placed is not None else None
    job, plan = jobs.new(session=session, job_in=job_in, caller=caller, now=now, settings=settings, location=location)
    timeline = []
    if placed is None:
        timeline.append(events.entry(EventType.location_needed, SYSTEM.actor, address=job.customer_address))
    elif job_in.customer.lat is None:
        geocoding.remember(session=session, address=job.customer_address, result=placed, now=now)
        timeline.append(
            events.entry(EventType.geocoded, SYSTEM.actor, lat=placed.lat, lon=placed.lon, cached=placed.cached)
        )
    if settings.auto_dispatch and placed is not None:
        try:
            choice = assignment.choose(
                session=session,
                lat=placed.lat,
                lon=placed.lon,
                skill=job.product_category,
                now=now,
                settings=settings,
            )
        except Conflict as exc:  # nobody available, or lost every race: nothing was written
            timeline.append(
                events.entry(
                    EventType.dispatch_failed, SYSTEM.actor, reason=exc.extra.get("reason", exc.code), detail=exc.detail
                )
            )
        else:
            jobs.assign_new(job, technician_id=choice.technician_id, now=now)
            timeline.append(events.entry(EventType.dispatched, SYSTEM.actor, **choice.details))
    return jobs.save_new(session=session, job=job, plan=plan, now=now, timeline=timeline)


def set_location(
    *, session: Session, job_id: int, lat: float, lon: float, caller: Caller, now: datetime, settings: Settings
) -> Job:
    """A dispatcher places a job whose address could not be geocoded; with auto-dispatch on, a
    job still waiting for a technician is dispatched as if it had just arrived placed."""
    job = jobs.set_location(session=session, job_id=job_id, lat=lat, lon=lon, caller=caller, now=now)
    if settings.auto_dispatch and job.status is JobStatus.new:
        auto_dispatch(session=session, job=job, now=now, settings=settings)
    return job


def auto_dispatch(*, session: Session, job: Job, now: datetime, settings: Settings) -> None:
    """Dispatch a saved job without a dispatcher; if nobody qualifies, it waits and the
    timeline says why."""
    if job.lat is None:
        return
    try:
        assignment.dispatch_job(session=session, job=job, caller=SYSTEM, now=now, settings=settings)
    except Conflict as exc:  # nobody available, or lost every race: nothing was written
        events.record(
            session=session,
            job_id=job.id,
            type=EventType.dispatch_failed,
            actor=SYSTEM.actor,
            now=now,
            reason=exc.extra.get("reason", exc.code),
            detail=exc.detail,
        )


def change_status(
    *, session: Session, job_id: int, change: StatusChange, caller: Caller, now: datetime, settings: Settings
) -> Job:
    """A status change, and what it does to the job's parts (completing consumes them,
    cancelling gives them back and the freed stock fills other jobs' backorders), its visits,
    and its SLA: any news from the job ends a pause, arriving meets or misses the arrival target."""
    target = jobs.settable_status(change=change, caller=caller, now=now, settings=settings)
    if change.status in ("completed", "cancelled"):
        parts.lock_parts_of_job(session, job_id)  # part locks come before the job's (see parts.service)
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    if job.paused_at is not None:
        # First, so that a job completed while paused is held against its moved deadline.
        sla.resume_locked(session, job, actor=caller.actor, now=now)
    jobs.change_status(
        session=session, job=job, target=target, change=change, caller=caller, now=now, settings=settings
    )
    sla.after_status_change(session, job, at=change.at, now=now)
    visits.track(
        session=session,
        job=job,
        technician_id=job.technician_id or _holder(session, job_id),
        at=change.at,
        actor=caller.actor,
        now=now,
        outcome=change.outcome,
        note=change.note,
    )
    parts.settle(session=session, job=job, now=now, actor=caller.actor, settings=settings)
    return job


def _holder(session: Session, job_id: int) -> int | None:
    """Who held the job before an ``unable`` cleared it: the visit in progress says."""
    visit = visits.current(session, job_id)
    return visit.technician_id if visit is not None else None
