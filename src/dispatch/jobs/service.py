"""Jobs: intake, visibility, status changes. Plain functions over a session; they flush, never commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.orm import Session

from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.clock import ensure_not_future
from dispatch.config import Settings
from dispatch.errors import Conflict, NotFound, Unprocessable
from dispatch.events import service as events
from dispatch.events.models import JobEvent
from dispatch.events.vocabulary import EventType
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
    DeadlinePublic,
    JobCreate,
    JobOrder,
    JobPublic,
    PartWaitPublic,
    ProductPublic,
    SlaPublic,
    StatusChange,
)
from dispatch.paging import Cut, Keyset
from dispatch.parts.models import JobPart
from dispatch.schemas import Id, Timestamp
from dispatch.sla import policies
from dispatch.sla import states as sla
from dispatch.sla.models import SlaCheckpoint
from dispatch.sla.states import SlaState
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
) -> tuple[Job, policies.Plan]:
    """A repair request, checked and ready to save, and its SLA plan (deadlines and checkpoints,
    computed once). ``location`` is the customer's position if known or geocoded; without one
    the job is still accepted and flagged for a dispatcher."""
    reported_at = job_in.reported_at or now
    ensure_not_future(reported_at, now=now, skew_seconds=settings.clock_skew_seconds, field=["reported_at"])
    if reported_at < now - timedelta(days=settings.reported_at_max_age_days):
        raise Unprocessable(
            f"reported_at is more than {settings.reported_at_max_age_days} days ago",
            code="timestamp-too-old",
            errors=[_field_error(["reported_at"], f"must be within the last {settings.reported_at_max_age_days} days")],
        )
    if job_in.product.purchased_on is not None and job_in.product.purchased_on > (now + timedelta(days=1)).date():
        raise Unprocessable(
            "product.purchased_on is in the future",
            code="date-in-future",
            errors=[_field_error(["product", "purchased_on"], "must not be in the future")],
        )
    outlet_id = caller.outlet_id if caller.role is Role.outlet else None
    if job_in.external_ref is not None:
        existing = session.scalar(
            select(Job.id).where(
                Job.outlet_id.is_(None) if outlet_id is None else Job.outlet_id == outlet_id,
                Job.external_ref == job_in.external_ref,
            )
        )
        if existing is not None:
            raise Conflict(
                f"a job with external_ref {job_in.external_ref!r} already exists",
                code="duplicate-external-ref",
                job_id=existing,
            )
    customer, product = job_in.customer, job_in.product
    job = Job(
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
        appointment_start=job_in.appointment.start if job_in.appointment else None,
        appointment_end=job_in.appointment.end if job_in.appointment else None,
        status=JobStatus.new,
        status_since=now,
        created_by=caller.actor,
        updated_at=now,
    )
    plan = sla_plan(session, job)
    policies.apply(job, plan)
    return job, plan


def sla_plan(session: Session, job: Job) -> policies.Plan:
    policy = policies.get(session, policies.policy_name_for(job.priority, job.service_tier))
    return policies.plan(policy, reported_at=job.reported_at, appointment_end=job.appointment_end)


def created_entry(job: Job) -> dict[str, Any]:
    return events.entry(
        EventType.job_created,
        job.created_by,
        occurred_at=job.reported_at,
        due_at=job.due_at.isoformat(),
        arrival_due_at=job.arrival_due_at.isoformat() if job.arrival_due_at else None,
        sla_policy=job.sla_policy,
        priority=job.priority.value,
        service_tier=job.service_tier.value,
        product_category=job.product_category,
        external_ref=job.external_ref,
    )


def save_new(*, session: Session, job: Job, plan: policies.Plan, now: datetime, timeline: list[dict[str, Any]]) -> Job:
    """Insert a new job, its SLA checkpoints (from ``new``'s plan) and its first timeline entries
    (``job_created`` first)."""
    session.add(job)
    session.flush()
    session.execute(insert(SlaCheckpoint), policies.checkpoint_rows(job.id, plan))  # type: ignore[arg-type]
    events.record_all(session=session, job_id=job.id, now=now, entries=[created_entry(job), *timeline])  # type: ignore[arg-type]
    return job


# Which stage of "where the time went" each status counts towards (docs/sla.md).
STAGE_OF: dict[JobStatus, str] = {
    JobStatus.new: "seconds_dispatch",
    JobStatus.unable: "seconds_dispatch",
    JobStatus.ready: "seconds_dispatch",
    JobStatus.assigned: "seconds_assigned",
    JobStatus.en_route: "seconds_travel",
    JobStatus.on_site: "seconds_on_site",
    JobStatus.waiting_parts: "seconds_parts",
}


def count_time(job: Job, now: datetime) -> None:
    """Add the time since the last change to its stage: the customer's while the clock is paused."""
    stage = "seconds_customer" if job.paused_at is not None else STAGE_OF.get(job.status)
    if stage is not None and job.status_since is not None:
        spent = int((now - job.status_since).total_seconds())
        setattr(job, stage, getattr(job, stage) + max(spent, 0))
    job.status_since = now


def set_status(job: Job, target: JobStatus, now: datetime) -> None:
    """Every status change goes through here, so the time in each stage adds up."""
    count_time(job, now)
    job.status = target


def assign_new(job: Job, *, technician_id: int, now: datetime) -> None:
    """Give a job that is not saved yet to a technician whose capacity is already claimed."""
    set_status(job, JobStatus.assigned, now)
    job.technician_id = technician_id
    job.assigned_at = now


def visible(caller: Caller) -> Select[tuple[Job]]:
    """Jobs this caller may see. Anything outside is simply not found (OWASP API1)."""
    stmt = select(Job)
    if caller.role is Role.technician:
        stmt = stmt.where(Job.technician_id == caller.technician_id)
    elif caller.role is Role.outlet:
        stmt = stmt.where(Job.outlet_id == caller.outlet_id)
    elif caller.role is Role.warehouse:
        # Warehouse staff need the jobs that asked for parts (to ship, chase and fill backorders), not
        # every customer's name and phone number.
        stmt = stmt.where(select(JobPart.id).where(JobPart.job_id == Job.id).exists())
    return stmt


def get(*, session: Session, job_id: int, caller: Caller, for_update: bool = False) -> Job:
    stmt = visible(caller).where(Job.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    job = session.scalar(stmt)
    if job is None:
        raise NotFound(f"job {job_id} not found", code="job-not-found")
    return job


# Most urgent (earliest due) first; ``order=-due_at`` walks the same key backwards.
JOBS: Keyset[Job] = Keyset("jobs", Timestamp, Id, key=lambda job: (job.due_at, job.id))


def timeline(*, session: Session, job_id: int, caller: Caller, limit: int, cursor: str | None) -> Cut[JobEvent]:
    """A page of the timeline of a job the caller may see."""
    get(session=session, job_id=job_id, caller=caller)
    return events.timeline(session=session, job_id=job_id, limit=limit, cursor=cursor)


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
    branch: str | None = None,
    search: str | None = None,
    external_ref: str | None = None,
) -> Cut[Job]:
    stmt = visible(caller)
    if statuses:
        stmt = stmt.where(Job.status.in_(statuses))
    if technician_id is not None:
        stmt = stmt.where(Job.technician_id == technician_id)
    if outlet_id is not None:
        stmt = stmt.where(Job.outlet_id == outlet_id)
    if sla_state is not None:
        stmt = stmt.where(sla.condition(sla_state, now))
    if needs_location is not None:
        stmt = stmt.where(Job.needs_location == needs_location)
    if category is not None:
        stmt = stmt.where(Job.product_category == category)
    if branch is not None:
        stmt = stmt.where(Job.technician_id.in_(technicians.ids_in_branch(branch)))
    if search is not None:
        stmt = stmt.where(search_condition(search))
    if external_ref is not None:
        stmt = stmt.where(Job.external_ref == external_ref)
    return JOBS.fetch(session, stmt, Job.due_at, Job.id, cursor=cursor, limit=limit, descending=order == "-due_at")


_PHONE_SEPARATORS = (" ", "-", "(", ")", ".", "/")


def _digits_only(column: Any) -> Any:
    for separator in _PHONE_SEPARATORS:
        column = func.replace(column, separator, "")
    return column


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_condition(text: str) -> Any:
    """The console's search box: the outlet's order number exactly, or part of the customer's
    phone number with spaces, dashes, dots and brackets ignored on both sides."""
    number = text
    for separator in _PHONE_SEPARATORS:
        number = number.replace(separator, "")
    conditions = [Job.external_ref == text]
    if len(number) >= 3:
        conditions.append(_digits_only(Job.customer_phone).like(f"%{_like_escape(number)}%", escape="\\"))
    return or_(*conditions)


def set_location(*, session: Session, job_id: int, lat: float, lon: float, caller: Caller, now: datetime) -> Job:
    job = get(session=session, job_id=job_id, caller=caller, for_update=True)
    if job.status not in OPEN:
        raise Conflict(f"job {job_id} is {job.status.value}; its location is final", code="job-closed")
    job.lat, job.lon, job.needs_location = lat, lon, False
    touch(job, now)
    session.flush()
    events.record(
        session=session, job_id=job.id, type=EventType.location_set, actor=caller.actor, now=now, lat=lat, lon=lon
    )
    return job


def lock_all(*, session: Session, job_ids: list[int]) -> list[Job]:
    """Lock job rows in id order for the system's own changes (no caller, so no visibility rule)."""
    if not job_ids:
        return []
    return list(
        session.scalars(
            select(Job)
            .where(Job.id.in_(sorted(set(job_ids))))
            .order_by(Job.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


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
    how: EventType,
    **details: Any,
) -> None:
    """Record an assignment whose capacity the caller has already claimed."""
    previous = job.technician_id
    job.technician_id = technician_id
    set_status(job, JobStatus.assigned, now)
    job.assigned_at = now
    touch(job, now)
    session.flush()
    events.record(
        session=session,
        job_id=job.id,
        type=how,
        actor=caller.actor,
        now=now,
        technician_id=technician_id,
        previous_technician_id=previous,
        **details,
    )


def ensure_in_order(session: Session, job: Job, at: datetime, *, skew_seconds: int) -> None:
    """A device time may arrive late (a phone that was offline) but may not go back before what
    already happened to the job: its report, its assignment, its last status change. Otherwise a
    wrong phone clock, or a wish, could complete a job before its deadline after the fact."""
    last = session.scalar(
        select(JobEvent.occurred_at)
        .where(JobEvent.job_id == job.id, JobEvent.type == EventType.status_changed.value)
        .order_by(JobEvent.id.desc())
        .limit(1)
    )
    floor = max(moment for moment in (job.reported_at, job.assigned_at, last) if moment is not None)
    if at < floor - timedelta(seconds=skew_seconds):
        raise Unprocessable(
            f"at is before what already happened to job {job.id} ({floor.isoformat()})",
            code="timestamp-out-of-order",
            not_before=floor.isoformat(),
            errors=[_field_error(["at"], "must not be before the job's last step")],
        )


def settable_status(*, change: StatusChange, caller: Caller, now: datetime, settings: Settings) -> JobStatus:
    """The status a caller asks for, if this caller may set it at that device time (checked
    before the job is even looked up)."""
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
    return target


def change_status(
    *,
    session: Session,
    job: Job,
    target: JobStatus,
    change: StatusChange,
    caller: Caller,
    now: datetime,
    settings: Settings,
) -> Job:
    """Move a job the caller has locked (``get(..., for_update=True)``) to ``target``, from
    ``settable_status``."""
    ensure_in_order(session, job, change.at, skew_seconds=settings.clock_skew_seconds)
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
    set_status(job, target, now)
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
        session=session,
        job_id=job.id,
        type=EventType.status_changed,
        actor=caller.actor,
        now=now,
        occurred_at=change.at,
        **{"from": current.value},
        to=target.value,
        technician_id=technician_id,
        note=change.note,
        lat=change.lat,
        lon=change.lon,
    )
    return job


def sla_public(job: Job, now: datetime) -> SlaPublic:
    deadlines = []
    if job.arrival_due_at is not None and job.arrival_at_risk_at is not None:
        deadlines.append(
            DeadlinePublic(
                deadline="arrival",
                due_at=job.arrival_due_at,
                at_risk_at=job.arrival_at_risk_at,
                done_at=job.arrived_at,
                outcome="pending" if job.arrived_at is None else ("missed" if job.arrival_missed else "met"),
            )
        )
    deadlines.append(
        DeadlinePublic(
            deadline="completion",
            due_at=job.due_at,
            at_risk_at=job.at_risk_at,
            done_at=job.completed_at,
            outcome="pending" if job.completed_at is None else ("missed" if job.completed_at > job.due_at else "met"),
        )
    )
    is_open = job.status in OPEN and job.next_due_at is not None
    if is_open:
        next_deadline = "arrival" if job.next_due_at == job.arrival_due_at and job.arrived_at is None else "completion"
        time_left = job.next_due_at - (min(now, job.paused_at) if job.paused_at else now)  # type: ignore[operator]
    else:
        next_deadline = None
        time_left = job.due_at - (job.completed_at or job.cancelled_at or now)
    return SlaPublic(
        policy=job.sla_policy,
        state=sla.state(job, now),
        due_at=job.due_at,
        at_risk_at=job.at_risk_at,
        deadlines=deadlines,
        next_deadline=next_deadline,
        next_due_at=job.next_due_at if is_open else None,  # type: ignore[arg-type]
        time_left_seconds=int(time_left.total_seconds()),
        reasons=sla.reasons(job, now),
        return_visits=job.return_visits,
        predicted_breach=job.predicted_breach if job.status in OPEN else None,
        paused_since=job.paused_at,
    )


def to_public(job: Job, now: datetime) -> JobPublic:
    return JobPublic(
        id=job.id,  # type: ignore[arg-type]
        status=job.status,
        outlet_id=job.outlet_id,
        external_ref=job.external_ref,
        customer=CustomerPublic(
            name=job.customer_name,
            phone=job.customer_phone,
            address=job.customer_address,
            lat=job.lat,
            lon=job.lon,
        ),
        product=ProductPublic(
            category=job.product_category,
            model=job.product_model,
            serial=job.product_serial,
            batch=job.product_batch,
            purchased_on=job.product_purchased_on,
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
        closed_at=job.closed_at,
        sla=sla_public(job, now),
        waiting_for_parts=[PartWaitPublic.model_validate(w) for w in job.waiting_for_parts or []],
        parts_eta=job.parts_eta,
        version=job.version,
        updated_at=job.updated_at,
    )
