"""Jobs: intake, visibility, status changes. Plain functions over a session; they flush, never commit."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.clock import ensure_not_future
from dispatch.config import Settings
from dispatch.errors import Conflict, NotFound, Unprocessable
from dispatch.events import service as events
from dispatch.jobs.lifecycle import (
    DISPATCHER_STATUSES,
    HOLDS_CAPACITY,
    OPEN,
    TECHNICIAN_STATUSES,
    TRANSITIONS,
    JobStatus,
    can_move,
)
from dispatch.jobs.models import Job
from dispatch.jobs.schemas import (
    AppointmentPublic,
    CustomerPublic,
    JobCreate,
    JobOrder,
    JobPublic,
    PartWaitPublic,
    ProductPublic,
    SlaPublic,
    StatusChange,
)
from dispatch.schemas import MAX_ID
from dispatch.sla import clock as sla
from dispatch.sla.clock import SlaState
from dispatch.technicians import service as technicians


def _field_error(loc: list[str | int], msg: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": "value_error"}


def new(
    *,
    session: Session,
    job_in: JobCreate,
    caller: Caller,
    now: datetime,
    settings: Settings,
    location: tuple[float, float] | None,
) -> Job:
    """A repair request, checked and ready to save. ``location`` is the customer's position if
    known or geocoded; without one the job is still accepted and flagged for a dispatcher."""
    reported_at = job_in.reported_at or now
    ensure_not_future(reported_at, now=now, skew_seconds=settings.clock_skew_seconds, field=["reported_at"])
    if job_in.product.purchased_on is not None and job_in.product.purchased_on > (now + timedelta(days=1)).date():
        raise Unprocessable(
            "product.purchased_on is in the future",
            code="date-in-future",
            errors=[_field_error(["product", "purchased_on"], "must not be in the future")],
        )
    outlet_id = caller.outlet_id if caller.role is Role.outlet else None
    if job_in.external_ref is not None:
        existing = session.scalar(
            select(Job.id).where(Job.outlet_id.is_(None) if outlet_id is None else Job.outlet_id == outlet_id,
                                 Job.external_ref == job_in.external_ref)
        )
        if existing is not None:
            raise Conflict(
                f"a job with external_ref {job_in.external_ref!r} already exists",
                code="duplicate-external-ref",
                job_id=existing,
            )
    deadlines = sla.deadlines(
        reported_at, completion_hours=settings.sla_completion_hours, at_risk_ratio=settings.sla_at_risk_ratio
    )
    customer, product = job_in.customer, job_in.product
    return Job(
        outlet_id=outlet_id,
        external_ref=job_in.external_ref,
        customer_name=customer.name,
        customer_phone=customer.phone,
        customer_address=customer.address,
        lat=location[0] if location else None,
        lon=location[1] if location else None,
        needs_location=location is None,
        product_category=product.category,
        product_model=product.model,
        product_serial=product.serial,
        product_batch=product.batch,
        product_purchased_on=product.purchased_on,
        fault=job_in.fault,
        priority=job_in.priority,
        service_tier=job_in.service_tier,
        reported_at=reported_at,
        received_at=now,
        due_at=deadlines.due_at,
        at_risk_at=deadlines.at_risk_at,
        appointment_start=job_in.appointment.start if job_in.appointment else None,
        appointment_end=job_in.appointment.end if job_in.appointment else None,
        status=JobStatus.new,
        created_by=caller.actor,
        updated_at=now,
    )


def created_entry(job: Job) -> dict[str, Any]:
    return events.entry(
        "job_created", job.created_by, occurred_at=job.reported_at, due_at=job.due_at.isoformat(),
        priority=job.priority.value, service_tier=job.service_tier.value,
        product_category=job.product_category, external_ref=job.external_ref,
    )


def save_new(*, session: Session, job: Job, now: datetime, timeline: list[dict[str, Any]]) -> Job:
    """Insert a new job and its first timeline entries (``job_created`` first)."""
    session.add(job)
    session.flush()
    events.record_all(session=session, job_id=job.id, now=now, entries=[created_entry(job), *timeline])  # type: ignore[arg-type]
    return job


def assign_new(job: Job, *, technician_id: int, now: datetime) -> None:
    """Give a job that is not saved yet to a technician whose capacity is already claimed."""
    job.status = JobStatus.assigned
    job.technician_id = technician_id
    job.assigned_at = now


def visible(caller: Caller) -> Select[tuple[Job]]:
    """Jobs this caller may see. Anything outside is simply not found (OWASP API1)."""
    stmt = select(Job)
    if caller.role is Role.technician:
        stmt = stmt.where(Job.technician_id == caller.technician_id)
    elif caller.role is Role.outlet:
        stmt = stmt.where(Job.outlet_id == caller.outlet_id)
    return stmt


def get(*, session: Session, job_id: int, caller: Caller, for_update: bool = False) -> Job:
    stmt = visible(caller).where(Job.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    job = session.scalar(stmt)
    if job is None:
        raise NotFound(f"job {job_id} not found", code="job-not-found")
    return job


def _encode_cursor(job: Job) -> str:
    raw = f"{job.due_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        due, job_id = raw.split("|")
        due_at, last_id = datetime.fromisoformat(due), int(job_id)
        if due_at.tzinfo is None or not 0 <= last_id <= MAX_ID:
            raise ValueError("not a cursor of ours")
        return due_at, last_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable(
            "cursor is not one this API gave out", code="invalid-cursor",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from exc


def sla_condition(state: SlaState, now: datetime) -> Any:
    """The SQL form of ``sla.clock.state`` so lists can filter by SLA state in the database."""
    open_ = Job.status.in_(list(OPEN))
    return {
        SlaState.breached: and_(open_, Job.due_at <= now),
        SlaState.at_risk: and_(
            open_, Job.due_at > now, or_(Job.at_risk_at <= now, Job.predicted_breach.is_not(None))
        ),
        SlaState.on_track: and_(open_, Job.at_risk_at > now, Job.predicted_breach.is_(None)),
        SlaState.met: and_(Job.status == JobStatus.completed, Job.completed_at <= Job.due_at),
        SlaState.missed: and_(Job.status == JobStatus.completed, Job.completed_at > Job.due_at),
        SlaState.cancelled: Job.status == JobStatus.cancelled,
    }[state]


def list_jobs(
    *,
    session: Session,
    caller: Caller,
    now: datetime,
    limit: int,
    cursor: str | None = None,
    order: JobOrder = "due_at",
    statuses: list[JobStatus] | None = None,
    technician_id: int | None = None,
    outlet_id: int | None = None,
    sla_state: SlaState | None = None,
    needs_location: bool | None = None,
    category: str | None = None,
    external_ref: str | None = None,
) -> tuple[list[Job], str | None]:
    stmt = visible(caller)
    if statuses:
        stmt = stmt.where(Job.status.in_(statuses))
    if technician_id is not None:
        stmt = stmt.where(Job.technician_id == technician_id)
    if outlet_id is not None:
        stmt = stmt.where(Job.outlet_id == outlet_id)
    if sla_state is not None:
        stmt = stmt.where(sla_condition(sla_state, now))
    if needs_location is not None:
        stmt = stmt.where(Job.needs_location == needs_location)
    if category is not None:
        stmt = stmt.where(Job.product_category == category)
    if external_ref is not None:
        stmt = stmt.where(Job.external_ref == external_ref)
    descending = order == "-due_at"
    if cursor is not None:
        due_at, last_id = _decode_cursor(cursor)
        if descending:
            stmt = stmt.where(or_(Job.due_at < due_at, and_(Job.due_at == due_at, Job.id < last_id)))
        else:
            stmt = stmt.where(or_(Job.due_at > due_at, and_(Job.due_at == due_at, Job.id > last_id)))
    stmt = stmt.order_by(*( (Job.due_at.desc(), Job.id.desc()) if descending else (Job.due_at, Job.id) ))
    rows = list(session.scalars(stmt.limit(limit + 1)))
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def set_location(
    *, session: Session, job_id: int, lat: float, lon: float, caller: Caller, now: datetime
) -> Job:
    job = get(session=session, job_id=job_id, caller=caller, for_update=True)
    if job.status not in OPEN:
        raise Conflict(f"job {job_id} is {job.status.value}; its location is final", code="job-closed")
    job.lat, job.lon, job.needs_location = lat, lon, False
    touch(job, now)
    session.flush()
    events.record(session=session, job_id=job.id, type="location_set", actor=caller.actor, now=now, lat=lat, lon=lon)
    return job


def lock_all(*, session: Session, job_ids: list[int]) -> list[Job]:
    """Lock job rows in id order for the system's own changes (no caller, so no visibility rule)."""
    if not job_ids:
        return []
    return list(session.scalars(
        select(Job).where(Job.id.in_(sorted(set(job_ids)))).order_by(Job.id).with_for_update()
        .execution_options(populate_existing=True)
    ))


def touch(job: Job, now: datetime) -> None:
    job.updated_at = now
    job.version += 1


def mark_assigned(
    *,
    session: Session,
    job: Job,
    technician_id: int,
    caller: Caller,
    now: datetime,
    how: str,
    **details: Any,
) -> None:
    """Record an assignment whose capacity the caller has already claimed."""
    previous = job.technician_id
    job.technician_id = technician_id
    job.status = JobStatus.assigned
    job.assigned_at = now
    touch(job, now)
    session.flush()
    events.record(
        session=session, job_id=job.id, type=how, actor=caller.actor, now=now,
        technician_id=technician_id, previous_technician_id=previous, **details,
    )


def change_status(
    *, session: Session, job_id: int, change: StatusChange, caller: Caller, now: datetime, settings: Settings
) -> Job:
    # Which roles may call this at all is the route's `allow(...)`; here, what each may set.
    allowed = TECHNICIAN_STATUSES if caller.role is Role.technician else DISPATCHER_STATUSES
    target = JobStatus(change.status)
    if target not in allowed:
        raise Unprocessable(
            f"status {target.value!r} cannot be set here; use one of {sorted(s.value for s in allowed)}",
            code="status-not-settable",
            errors=[_field_error(["status"], "not a status this caller may set")],
        )
    ensure_not_future(change.at, now=now, skew_seconds=settings.clock_skew_seconds, field=["at"])
    job = get(session=session, job_id=job_id, caller=caller, for_update=True)
    current = job.status
    if not can_move(current, target):
        raise Conflict(
            f"a job that is {current.value} cannot become {target.value}",
            code="illegal-transition",
            current_status=current.value,
            allowed=sorted(s.value for s in TRANSITIONS[current]),
        )
    technician_id = job.technician_id
    if current in HOLDS_CAPACITY and target not in HOLDS_CAPACITY and technician_id is not None:
        technicians.release_capacity(session=session, technician_id=technician_id)
    job.status = target
    if target is JobStatus.completed:
        job.completed_at = change.at
    elif target is JobStatus.cancelled:
        job.cancelled_at = now
    elif target is JobStatus.unable:
        # Off the technician's list; the job waits to be dispatched again.
        job.technician_id = None
    touch(job, now)
    session.flush()
    events.record(
        session=session, job_id=job.id, type="status_changed", actor=caller.actor, now=now,
        occurred_at=change.at, **{"from": current.value}, to=target.value,
        technician_id=technician_id, note=change.note, lat=change.lat, lon=change.lon,
    )
    return job


def to_public(job: Job, now: datetime) -> JobPublic:
    state = sla.state(
        now, due_at=job.due_at, at_risk_at=job.at_risk_at, completed_at=job.completed_at,
        cancelled=job.status is JobStatus.cancelled, predicted_breach=job.predicted_breach is not None,
    )
    end = job.completed_at or job.cancelled_at or now
    return JobPublic(
        id=job.id,  # type: ignore[arg-type]
        status=job.status,
        outlet_id=job.outlet_id,
        external_ref=job.external_ref,
        customer=CustomerPublic(
            name=job.customer_name, phone=job.customer_phone, address=job.customer_address,
            lat=job.lat, lon=job.lon,
        ),
        product=ProductPublic(
            category=job.product_category, model=job.product_model, serial=job.product_serial,
            batch=job.product_batch, purchased_on=job.product_purchased_on,
        ),
        fault=job.fault,
        priority=job.priority,
        service_tier=job.service_tier,
        reported_at=job.reported_at,
        received_at=job.received_at,
        due_at=job.due_at,
        appointment=AppointmentPublic(start=job.appointment_start, end=job.appointment_end)
        if job.appointment_start and job.appointment_end
        else None,
        needs_location=job.needs_location,
        technician_id=job.technician_id,
        assigned_at=job.assigned_at,
        completed_at=job.completed_at,
        cancelled_at=job.cancelled_at,
        sla=SlaPublic(
            state=state, due_at=job.due_at, at_risk_at=job.at_risk_at,
            time_left_seconds=int((job.due_at - end).total_seconds()),
            predicted_breach=job.predicted_breach if job.status in OPEN else None,
        ),
        waiting_for_parts=[PartWaitPublic.model_validate(w) for w in job.waiting_for_parts or []],
        parts_eta=job.parts_eta,
        version=job.version,
        updated_at=job.updated_at,
    )
