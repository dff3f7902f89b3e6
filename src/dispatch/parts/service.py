"""Parts that drive the job: where a requested part comes from, what waits, what fills a
backorder, and when the job goes back out.

Lock order, everywhere: the part's catalogue row, then job rows (in id order), then
technicians. Holding the part row while deciding who gets its stock means a backorder can
never be written just after a receipt looked for backorders to fill.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch import versions
from dispatch.assignment import service as assignment
from dispatch.auth.service import SYSTEM, Caller
from dispatch.config import Settings
from dispatch.errors import Conflict, NotFound, Unprocessable
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.jobs import service as jobs
from dispatch.jobs.lifecycle import (
    HOLDS_CAPACITY,
    OPEN,
    WAITS_FOR_PARTS_FROM,
    JobStatus,
)
from dispatch.jobs.models import Job
from dispatch.paging import Cut, Keyset
from dispatch.parts import stock
from dispatch.parts.models import (
    HELD,
    WAITING,
    JobPart,
    JobPartState,
    Location,
    LocationKind,
    MovementReason,
    Part,
    Shipment,
    ShipmentStatus,
)
from dispatch.parts.schemas import PartRequestCreate, ShipmentCreate
from dispatch.parts.stock import Why
from dispatch.schemas import Id
from dispatch.technicians import service as technicians
from dispatch.visits import service as visits

PARTS_LATE = "parts_eta_after_due"


# --- where a part comes from --------------------------------------------------------------


def _home_branch(session: Session, job: Job) -> Location | None:
    """The branch the job's technician works from, if the job has one and it is a known branch."""
    if job.technician_id is None:
        return None
    code = technicians.get(session=session, technician_id=job.technician_id).home_branch
    if code is None:
        return None
    found = session.scalar(select(Location).where(Location.code == code))
    return found if found is not None and found.kind is LocationKind.branch else None


def _destination(session: Session, job: Job) -> Location | None:
    """Where the job's parts should end up: the technician's branch, else the branch nearest the customer."""
    return _home_branch(session, job) or stock.nearest_branch(session, job.lat, job.lon)


def _hold(session: Session, line: JobPart, source: Location, job: Job, why: Why) -> bool:
    """Hold ``line.quantity`` from ``source`` for the job: reserved there if technicians collect
    there, else shipped from the central warehouse to the job's branch. False if the stock went."""
    destination = _destination(session, job) if source.kind is LocationKind.central else None
    if destination is None:  # a branch, or a warehouse with no branch to ship to: collect it here
        if not stock.move(
            session,
            location_id=source.id,
            part_id=line.part_id,
            reserved=line.quantity,  # type: ignore[arg-type]
            reason=MovementReason.reserved,
            why=why,
        ):
            return False
        line.state, line.location_id, line.shipment_id, line.eta = JobPartState.reserved, source.id, None, None
        return True
    shipment = Shipment(
        part_id=line.part_id,
        quantity=line.quantity,
        from_location_id=source.id,
        to_location_id=destination.id,
        eta=why.now + timedelta(hours=destination.delivery_hours),
        status=ShipmentStatus.in_transit,
        job_id=job.id,
        created_by=why.actor,
        created_at=why.now,
    )
    session.add(shipment)
    session.flush()
    if not stock.move(
        session,
        location_id=source.id,
        part_id=line.part_id,
        on_hand=-line.quantity,  # type: ignore[arg-type]
        reason=MovementReason.shipped,
        why=replace(why, shipment_id=shipment.id),
    ):
        session.delete(shipment)
        session.flush()
        return False
    line.state, line.location_id, line.shipment_id, line.eta = (
        JobPartState.in_transit,
        destination.id,
        shipment.id,
        shipment.eta,
    )
    return True


def _sources(session: Session, job: Job, part: Part, quantity: int) -> list[Location]:
    """Locations that have the whole quantity free, best first: the technician's own branch,
    then other branches nearest the customer, then the central warehouse."""
    home = _home_branch(session, job)
    found = stock.available(session=session, part_id=part.id, lat=job.lat, lon=job.lon, minimum=quantity)  # type: ignore[arg-type]
    return [
        a.location
        for a in sorted(
            found,
            key=lambda a: (home is None or a.location.id != home.id, a.location.kind is LocationKind.central),
        )
    ]


def backorder_eta(session: Session, part: Part, quantity: int, now: datetime) -> datetime:
    """When a new backorder can expect its parts: the first supplier or transfer shipment that
    still has room after the backorders already waiting, else the part's lead time from now."""
    waiting = (
        session.scalar(
            select(func.coalesce(func.sum(JobPart.quantity), 0)).where(
                JobPart.part_id == part.id, JobPart.state == JobPartState.backordered
            )
        )
        or 0
    )
    incoming = session.execute(
        select(Shipment.quantity, Shipment.eta)
        .where(Shipment.part_id == part.id, Shipment.status == ShipmentStatus.in_transit, Shipment.job_id.is_(None))
        .order_by(Shipment.eta, Shipment.id)
    ).all()
    arriving = 0
    for shipped, eta in incoming:
        arriving += shipped
        if arriving >= waiting + quantity:
            return max(eta, now)
    return now + timedelta(hours=part.lead_time_hours)


def request_parts(
    *, session: Session, job_id: int, request: PartRequestCreate, caller: Caller, now: datetime, settings: Settings
) -> JobPart:
    """A technician or dispatcher asks for a part on a job: reserve it from the best source, or
    backorder it with an ETA. The job then waits if anything is not yet at hand."""
    part = stock.part(session=session, sku=request.sku, field=("body", "sku"), for_update=True)
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    if job.status not in OPEN:
        raise Conflict(f"job {job_id} is {job.status.value}; it needs no more parts", code="job-closed")
    why = Why(actor=caller.actor, now=now, job_id=job.id, note=request.note)
    line = JobPart(
        job_id=job.id,
        part_id=part.id,
        quantity=request.quantity,
        state=JobPartState.backordered,  # type: ignore[arg-type]
        requested_by=caller.actor,
        requested_at=now,
        updated_at=now,
        note=request.note,
    )
    for source in _sources(session, job, part, request.quantity):
        if _hold(session, line, source, job, why):
            break
    else:
        line.eta = backorder_eta(session, part, request.quantity, now)
    session.add(line)
    session.flush()
    _record_line(session, job, line, part, caller.actor, now, requested=True)
    refresh(session=session, job=job, now=now, actor=caller.actor, settings=settings)
    return line


def _record_line(
    session: Session, job: Job, line: JobPart, part: Part, actor: str, now: datetime, *, requested: bool = False
) -> None:
    location = session.get(Location, line.location_id) if line.location_id is not None else None
    kind = {
        JobPartState.reserved: EventType.parts_reserved if requested else EventType.parts_arrived,
        JobPartState.in_transit: EventType.parts_in_transit,
        JobPartState.backordered: EventType.parts_backordered,
        JobPartState.released: EventType.parts_released,
        JobPartState.consumed: EventType.parts_consumed,
    }[line.state]
    events.record(
        session=session,
        job_id=job.id,
        type=kind,
        actor=actor,
        now=now,  # type: ignore[arg-type]
        line_id=line.id,
        sku=part.sku,
        quantity=line.quantity,
        location=location.code if location else None,
        shipment_id=line.shipment_id,
        eta=line.eta.isoformat() if line.eta else None,
    )


# --- what the job waits for, and sending the technician back -------------------------------


def lines_of(session: Session, job_id: int) -> list[JobPart]:
    return list(session.scalars(select(JobPart).where(JobPart.job_id == job_id).order_by(JobPart.id)))


def job_lines(*, session: Session, job_id: int, caller: Caller) -> list[JobPart]:
    """Every part asked for on a job the caller may see (a handful: what one job can need)."""
    jobs.get(session=session, job_id=job_id, caller=caller)
    return lines_of(session, job_id)


def refresh(*, session: Session, job: Job, now: datetime, actor: str, settings: Settings) -> None:
    """Bring the job in line with its parts: what it waits for and until when, whether that
    predicts a breach, and its status (waiting, or ready and sent back). Caller holds the job lock."""
    waiting = [line for line in lines_of(session, job.id) if line.state in WAITING]  # type: ignore[arg-type]
    skus = dict(session.execute(select(Part.id, Part.sku).where(Part.id.in_({w.part_id for w in waiting}))).all())
    job.waiting_for_parts = [
        {
            "sku": skus[w.part_id],
            "quantity": w.quantity,
            "state": w.state.value,
            "eta": w.eta.isoformat() if w.eta else None,
        }
        for w in waiting
    ] or None
    etas = [w.eta for w in waiting if w.eta is not None]
    job.parts_eta = max(etas) if etas else None
    late = job.parts_eta is not None and job.parts_eta > job.due_at
    if late and job.predicted_breach is None:
        job.predicted_breach = PARTS_LATE
        events.record(
            session=session,
            job_id=job.id,
            type=EventType.breach_predicted,
            actor=SYSTEM.actor,
            now=now,  # type: ignore[arg-type]
            reason=PARTS_LATE,
            parts_eta=job.parts_eta.isoformat(),
            due_at=job.due_at.isoformat(),
        )  # type: ignore[union-attr]
    elif not late and job.predicted_breach == PARTS_LATE:
        job.predicted_breach = None
        events.record(
            session=session,
            job_id=job.id,
            type=EventType.breach_no_longer_predicted,
            actor=SYSTEM.actor,  # type: ignore[arg-type]
            now=now,
            reason=PARTS_LATE,
        )
    if waiting and job.status in WAITS_FOR_PARTS_FROM:
        _park(session, job, now, actor)
    elif not waiting and job.status is JobStatus.waiting_parts:
        send_back(session=session, job=job, now=now, settings=settings)
    jobs.touch(job, now)
    session.flush()


def _park(session: Session, job: Job, now: datetime, actor: str) -> None:
    """Nobody goes to the customer without the part: the technician's slot is freed for other
    work, and the technician stays on the job to be sent back when the part is in."""
    previous = job.status
    if previous in HOLDS_CAPACITY and job.technician_id is not None:
        technicians.release_capacity(session=session, technician_id=job.technician_id)
    jobs.set_status(job, JobStatus.waiting_parts, now)
    events.record(
        session=session,
        job_id=job.id,
        type=EventType.status_changed,
        actor=actor,
        now=now,  # type: ignore[arg-type]
        **{"from": previous.value},
        to=JobStatus.waiting_parts.value,
        technician_id=job.technician_id,
        parts_eta=job.parts_eta.isoformat() if job.parts_eta else None,
    )
    visits.track(session=session, job=job, technician_id=job.technician_id, at=now, actor=actor, now=now)  # needs_parts


def send_back(*, session: Session, job: Job, now: datetime, settings: Settings) -> None:
    """Every part is in: the same technician goes back if they can (continuity), otherwise the
    nearest available one; with nobody available the job is ready for a dispatcher."""
    assignment.send_back(session=session, job=job, previous=job.technician_id, now=now, settings=settings)


# --- goods coming in -----------------------------------------------------------------------


def fill_backorders(
    *, session: Session, location: Location, part: Part, why: Why, settings: Settings
) -> tuple[int, int]:
    """Offer a location's free stock of a part to its backorders, most urgent job (earliest
    deadline) first; a backorder larger than what is left is split. Returns (filled, quantity).
    Caller holds the part lock."""
    backorders = list(
        session.scalars(
            select(JobPart)
            .join(Job, Job.id == JobPart.job_id)
            .where(JobPart.part_id == part.id, JobPart.state == JobPartState.backordered)
            .order_by(Job.due_at, JobPart.id)
        )
    )
    if not backorders:
        return 0, 0
    level = stock.level(session, location.id, part.id)  # type: ignore[arg-type]
    free = level.on_hand - level.reserved if level else 0
    # The backorders this stock will reach, and their jobs locked in id order (as everywhere),
    # so two fills of different parts for the same jobs queue instead of deadlocking.
    reached, left = [], free
    for line in backorders:
        if left <= 0:
            break
        reached.append(line)
        left -= line.quantity
    jobs_touched = {job.id: job for job in jobs.lock_all(session=session, job_ids=[b.job_id for b in reached])}
    filled: list[JobPart] = []
    for line in reached:
        job = jobs_touched[line.job_id]
        target = line
        if line.quantity > free:
            line.quantity -= free
            line.updated_at = why.now
            target = JobPart(
                job_id=line.job_id,
                part_id=line.part_id,
                quantity=free,
                state=JobPartState.backordered,
                requested_by=line.requested_by,
                requested_at=line.requested_at,
                updated_at=why.now,
                note=line.note,
            )
            session.add(target)
        if not _hold(session, target, location, job, replace(why, job_id=job.id)):  # type: ignore[arg-type]
            break  # cannot happen while the part lock is held; stop rather than guess
        target.updated_at = why.now
        free -= target.quantity
        filled.append(target)
    session.flush()
    for target in filled:
        _record_line(session, jobs_touched[target.job_id], target, part, why.actor, why.now)
    for job_id in sorted(jobs_touched):
        refresh(session=session, job=jobs_touched[job_id], now=why.now, actor=why.actor, settings=settings)
    return len(filled), sum(t.quantity for t in filled)


def receive_goods(
    *,
    session: Session,
    code: str,
    sku: str,
    quantity: int,
    note: str | None,
    caller: Caller,
    now: datetime,
    settings: Settings,
) -> tuple[stock.Level, tuple[int, int]]:
    """Goods received at a location: backorders are filled first, the rest is free stock. The
    location's stock after it, and the backorders filled (lines, pieces)."""
    part = stock.part(session=session, sku=sku, field=("body", "sku"), for_update=True)
    location = stock.location(session=session, code=code)
    why = Why(actor=caller.actor, now=now, note=note)
    stock.move(
        session,
        location_id=location.id,
        part_id=part.id,
        on_hand=quantity,  # type: ignore[arg-type]
        reason=MovementReason.received,
        why=why,
    )
    filled = fill_backorders(session=session, location=location, part=part, why=why, settings=settings)
    return stock.level_of(session, location, part), filled


def set_stock(
    *,
    session: Session,
    code: str,
    sku: str,
    on_hand: int,
    note: str | None,
    caller: Caller,
    now: datetime,
    settings: Settings,
    if_match: list[str] | None = None,
) -> stock.Level:
    """A stock count: set on hand. It may not drop below what is promised to jobs. With
    ``if_match``, refused (412) if on hand moved since the counter read it (a receipt, a use)."""
    part = stock.part(session=session, sku=sku, for_update=True)
    location = stock.location(session=session, code=code)
    stock.ensure_stock_row(session, location.id, part.id, now)  # type: ignore[arg-type]
    level = stock.level(session, location.id, part.id)  # type: ignore[arg-type]
    assert level is not None
    versions.check(if_match, stock.version(location.id, part.id, level), what=f"stock of {sku} at {code}")  # type: ignore[arg-type]
    if on_hand < level.reserved:
        raise Conflict(
            f"{level.reserved} of {sku} at {code} are reserved for jobs; on hand cannot go below that",
            code="below-reserved",
            reserved=level.reserved,
        )
    change = on_hand - level.on_hand
    why = Why(actor=caller.actor, now=now, note=note)
    if change:
        stock.move(
            session,
            location_id=location.id,
            part_id=part.id,
            on_hand=change,  # type: ignore[arg-type]
            reason=MovementReason.counted,
            why=why,
        )
    if change > 0:
        fill_backorders(session=session, location=location, part=part, why=why, settings=settings)
    return stock.level_of(session, location, part)


def create_shipment(
    *, session: Session, shipment_in: ShipmentCreate, caller: Caller, now: datetime, settings: Settings
) -> Shipment:
    """Stock sent between locations (it leaves the origin now), or a supplier delivery announced
    (no origin): either way its ETA tells backorders when to expect it."""
    if shipment_in.eta < now - timedelta(seconds=settings.clock_skew_seconds):
        raise Unprocessable(
            "eta is in the past",
            code="eta-in-past",
            errors=[{"loc": ["body", "eta"], "msg": "must not be in the past", "type": "value_error"}],
        )
    if shipment_in.from_location is not None and shipment_in.from_location == shipment_in.to_location:
        raise Unprocessable(
            "a shipment goes somewhere else",
            code="same-location",
            errors=[{"loc": ["body", "to_location"], "msg": "same as from_location", "type": "value_error"}],
        )
    part = stock.part(session=session, sku=shipment_in.sku, field=("body", "sku"), for_update=True)
    origin = (
        stock.location(session=session, code=shipment_in.from_location, field=("body", "from_location"))
        if shipment_in.from_location is not None
        else None
    )
    destination = stock.location(session=session, code=shipment_in.to_location, field=("body", "to_location"))
    shipment = Shipment(
        part_id=part.id,
        quantity=shipment_in.quantity,
        from_location_id=origin.id if origin else None,  # type: ignore[arg-type]
        to_location_id=destination.id,
        eta=shipment_in.eta,
        status=ShipmentStatus.in_transit,  # type: ignore[arg-type]
        created_by=caller.actor,
        created_at=now,
    )
    session.add(shipment)
    session.flush()
    if origin is not None:
        stock.move_or_refuse(
            session,
            location_id=origin.id,
            part_id=part.id,
            on_hand=-shipment_in.quantity,
            reason=MovementReason.shipped,
            why=Why(actor=caller.actor, now=now, shipment_id=shipment.id),
        )
    return shipment


def receive_shipment(
    *, session: Session, shipment_id: int, caller: Caller, now: datetime, settings: Settings
) -> Shipment:
    """A shipment arrives: job parts on it become reserved at the destination, the rest fills
    backorders there, then becomes free stock."""
    found = session.get(Shipment, shipment_id)
    if found is None:
        raise NotFound(f"shipment {shipment_id} not found", code="shipment-not-found")
    part = session.get(Part, found.part_id)
    assert part is not None
    stock.lock_parts(session, [part.id])  # type: ignore[list-item]
    shipment = session.scalar(
        select(Shipment).where(Shipment.id == shipment_id).with_for_update().execution_options(populate_existing=True)
    )
    assert shipment is not None
    if shipment.status is not ShipmentStatus.in_transit:
        raise Conflict(f"shipment {shipment_id} was received already", code="shipment-received")
    shipment.status, shipment.received_at = ShipmentStatus.received, now
    destination = session.get(Location, shipment.to_location_id)
    assert destination is not None
    why = Why(actor=caller.actor, now=now, shipment_id=shipment.id)
    stock.move(
        session,
        location_id=destination.id,
        part_id=part.id,
        on_hand=shipment.quantity,  # type: ignore[arg-type]
        reason=MovementReason.arrived,
        why=why,
    )
    carried = list(
        session.scalars(
            select(JobPart)
            .where(JobPart.shipment_id == shipment.id, JobPart.state == JobPartState.in_transit)
            .order_by(JobPart.job_id, JobPart.id)
        )
    )
    touched = {job.id: job for job in jobs.lock_all(session=session, job_ids=[line.job_id for line in carried])}
    for line in carried:
        job = touched[line.job_id]
        stock.move(
            session,
            location_id=destination.id,
            part_id=part.id,
            reserved=line.quantity,  # type: ignore[arg-type]
            reason=MovementReason.reserved,
            why=replace(why, job_id=line.job_id),
        )
        line.state, line.eta, line.updated_at = JobPartState.reserved, None, now
        session.flush()
        _record_line(session, job, line, part, caller.actor, now)
    for job in touched.values():
        refresh(session=session, job=job, now=now, actor=caller.actor, settings=settings)
    fill_backorders(session=session, location=destination, part=part, why=why, settings=settings)
    return shipment


# --- the job ends, or a part is not needed --------------------------------------------------


def lock_parts_of_job(session: Session, job_id: int) -> None:
    """Take the part locks a change to this job's parts will need, before the job's own lock."""
    stock.lock_parts(session, list(session.scalars(select(JobPart.part_id).where(JobPart.job_id == job_id))))


def settle(*, session: Session, job: Job, now: datetime, actor: str, settings: Settings) -> None:
    """A completed job consumes what it holds; a cancelled one gives everything back. Whatever
    else was on order for it is released. Freed stock is offered to other backorders at once."""
    if job.status not in (JobStatus.completed, JobStatus.cancelled):
        return
    consume = job.status is JobStatus.completed
    freed: set[tuple[int, int]] = set()
    for line in lines_of(session, job.id):  # type: ignore[arg-type]
        if line.state not in HELD and line.state is not JobPartState.backordered:
            continue
        why = Why(actor=actor, now=now, job_id=job.id)
        if line.state is JobPartState.reserved and consume:
            stock.move(
                session,
                location_id=line.location_id,
                part_id=line.part_id,
                on_hand=-line.quantity,  # type: ignore[arg-type]
                reserved=-line.quantity,
                reason=MovementReason.consumed,
                why=why,
            )
            line.state = JobPartState.consumed
        else:
            if line.state is JobPartState.reserved:
                stock.move(
                    session,
                    location_id=line.location_id,
                    part_id=line.part_id,
                    reserved=-line.quantity,  # type: ignore[arg-type]
                    reason=MovementReason.released,
                    why=why,
                )
                freed.add((line.location_id, line.part_id))  # type: ignore[arg-type]
            line.state = JobPartState.released  # in transit: arrives as free stock; backordered: dropped
        line.updated_at = now
        session.flush()
        _record_line(session, job, line, session.get(Part, line.part_id), actor, now)  # type: ignore[arg-type]
    job.waiting_for_parts, job.parts_eta = None, None
    if job.predicted_breach == PARTS_LATE:
        job.predicted_breach = None
    session.flush()
    for location_id, part_id in sorted(freed):
        fill_backorders(
            session=session,
            location=session.get(Location, location_id),
            part=session.get(Part, part_id),  # type: ignore[arg-type]
            why=Why(actor=actor, now=now),
            settings=settings,
        )


def _line(session: Session, job_id: int, line_id: int, caller: Caller) -> tuple[Job, JobPart, Part]:
    """A job's part line with its part locked, then the job: the lock order of this module."""
    line = session.get(JobPart, line_id)
    if line is None or line.job_id != job_id:
        jobs.get(session=session, job_id=job_id, caller=caller)  # a 404 for the job first, if it is not theirs
        raise NotFound(f"job {job_id} has no part line {line_id}", code="part-line-not-found")
    part = session.get(Part, line.part_id)
    assert part is not None
    stock.lock_parts(session, [part.id])  # type: ignore[list-item]
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    session.refresh(line)
    return job, line, part


def release_part(
    *, session: Session, job_id: int, line_id: int, caller: Caller, now: datetime, settings: Settings
) -> JobPart:
    """A part the job turns out not to need: its reservation, shipment or backorder is let go."""
    job, line, part = _line(session, job_id, line_id, caller)
    if job.status not in OPEN or line.state not in (*HELD, JobPartState.backordered):
        raise Conflict(
            f"part line {line_id} is {line.state.value}; only open requests can be released", code="part-line-closed"
        )
    held_at = line.location_id if line.state is JobPartState.reserved else None
    why = Why(actor=caller.actor, now=now, job_id=job.id)
    if held_at is not None:
        stock.move(
            session,
            location_id=held_at,
            part_id=part.id,
            reserved=-line.quantity,  # type: ignore[arg-type]
            reason=MovementReason.released,
            why=why,
        )
    line.state, line.updated_at = JobPartState.released, now
    session.flush()
    _record_line(session, job, line, part, caller.actor, now)
    refresh(session=session, job=job, now=now, actor=caller.actor, settings=settings)
    if held_at is not None:
        fill_backorders(
            session=session,
            location=session.get(Location, held_at),
            part=part,  # type: ignore[arg-type]
            why=replace(why, job_id=None),
            settings=settings,
        )
    return line


def return_part(
    *,
    session: Session,
    job_id: int,
    line_id: int,
    quantity: int,
    note: str | None,
    caller: Caller,
    now: datetime,
    settings: Settings,
) -> JobPart:
    """Parts taken for a completed job but not used go back on the shelf they came from."""
    job, line, part = _line(session, job_id, line_id, caller)
    if line.state is not JobPartState.consumed:
        raise Conflict(
            f"part line {line_id} is {line.state.value}; only parts used on a completed job come back",
            code="part-line-not-consumed",
        )
    if quantity > line.quantity - line.returned:
        raise Unprocessable(
            f"only {line.quantity - line.returned} of this line can still be returned",
            code="return-too-many",
            errors=[{"loc": ["body", "quantity"], "msg": "more than was taken", "type": "value_error"}],
        )
    why = Why(actor=caller.actor, now=now, job_id=job.id, note=note)
    stock.move(
        session,
        location_id=line.location_id,
        part_id=part.id,
        on_hand=quantity,  # type: ignore[arg-type]
        reason=MovementReason.returned,
        why=why,
    )
    line.returned += quantity
    line.updated_at = now
    session.flush()
    events.record(
        session=session,
        job_id=job.id,
        type=EventType.parts_returned,
        actor=caller.actor,
        now=now,  # type: ignore[arg-type]
        line_id=line.id,
        sku=part.sku,
        quantity=quantity,
    )
    fill_backorders(
        session=session,
        location=session.get(Location, line.location_id),
        part=part,  # type: ignore[arg-type]
        why=replace(why, job_id=None),
        settings=settings,
    )
    return line


# --- questions about stock -----------------------------------------------------------------


BACKORDERS: Keyset[Any] = Keyset("backorders", Id, key=lambda row: (row[0].id,))  # rows of (JobPart, Job)
SHIPMENTS: Keyset[Shipment] = Keyset("shipments", Id)


def backorders(*, session: Session, sku: str | None, limit: int, cursor: str | None) -> Cut[tuple[JobPart, Job]]:
    """What is on backorder (of ``sku``, or of anything) and for which jobs, oldest first."""
    stmt = select(JobPart, Job).join(Job, Job.id == JobPart.job_id).where(JobPart.state == JobPartState.backordered)
    if sku is not None:
        stmt = stmt.where(JobPart.part_id == stock.part(session=session, sku=sku, field=("query", "sku")).id)
    return BACKORDERS.fetch(session, stmt, JobPart.id, cursor=cursor, limit=limit)


def shipments(
    *,
    session: Session,
    sku: str | None,
    to_location: str | None,
    status: ShipmentStatus | None,
    limit: int,
    cursor: str | None,
) -> Cut[Shipment]:
    stmt = select(Shipment)
    if sku is not None:
        stmt = stmt.where(Shipment.part_id == stock.part(session=session, sku=sku, field=("query", "sku")).id)
    if to_location is not None:
        place = stock.location(session=session, code=to_location, field=("query", "to_location"))
        stmt = stmt.where(Shipment.to_location_id == place.id)
    if status is not None:
        stmt = stmt.where(Shipment.status == status)
    return SHIPMENTS.fetch(session, stmt, Shipment.id, cursor=cursor, limit=limit)


def shipment(*, session: Session, shipment_id: int) -> Shipment:
    found = session.get(Shipment, shipment_id)
    if found is None:
        raise NotFound(f"shipment {shipment_id} not found", code="shipment-not-found")
    return found


def availability(
    *,
    session: Session,
    sku: str,
    caller: Caller,
    job_id: int | None = None,
    lat: float | None = None,
    lon: float | None = None,
    limit: int,
) -> list[stock.Available]:
    """The ``limit`` locations where the part is free nearest to the job (or to ``lat``/``lon``),
    nearest first. Not paged: the nearest few are the answer."""
    if (lat is None) != (lon is None) or (job_id is not None and lat is not None):
        raise Unprocessable(
            "give job_id, or lat and lon together, or nothing",
            code="invalid-position",
            errors=[{"loc": ["query", "lat"], "msg": "job_id or lat and lon", "type": "value_error"}],
        )
    part = stock.part(session=session, sku=sku)
    if job_id is not None:
        job = jobs.get(session=session, job_id=job_id, caller=caller)
        lat, lon = job.lat, job.lon
    return stock.available(session=session, part_id=part.id, lat=lat, lon=lon)[:limit]  # type: ignore[arg-type]


def codes(session: Session, location_ids: set[int | None], part_ids: set[int]) -> tuple[dict[int, str], dict[int, str]]:
    """Location codes and SKUs for turning rows into public shapes in two queries."""
    ids = {i for i in location_ids if i is not None}
    locations = (
        dict(session.execute(select(Location.id, Location.code).where(Location.id.in_(ids))).all()) if ids else {}
    )
    skus = dict(session.execute(select(Part.id, Part.sku).where(Part.id.in_(part_ids))).all()) if part_ids else {}
    return locations, skus  # type: ignore[return-value]
