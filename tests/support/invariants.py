"""Bookkeeping that must add up whatever happened (docs/parts.md, "No oversell,
and no lost backorder"), read straight from the database. Each ``*_problems`` returns what is wrong; empty
means consistent."""

from __future__ import annotations

from sqlalchemy import func, select

from dispatch.database.core import Database
from dispatch.jobs.lifecycle import HOLDS_CAPACITY, JobStatus
from dispatch.jobs.models import Job
from dispatch.parts.models import JobPart, JobPartState, Stock, StockMovement
from dispatch.technicians.models import Technician


def capacity_problems(database: Database) -> list[str]:
    """For each technician, ``open_jobs`` equals the number of their jobs that hold capacity and
    ``0 <= open_jobs <= capacity``; no job holds capacity without a technician."""
    with database.transaction(write=False) as session:
        techs = session.execute(select(Technician.id, Technician.open_jobs, Technician.capacity)).all()
        held = dict(
            session.execute(
                select(Job.technician_id, func.count())
                .where(Job.status.in_(list(HOLDS_CAPACITY)))
                .group_by(Job.technician_id)
            ).all()
        )
        orphans = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.status.in_(list(HOLDS_CAPACITY)), Job.technician_id.is_(None))
        )
        waiting_with_tech = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.status.in_([JobStatus.new, JobStatus.unable]), Job.technician_id.is_not(None))
        )
    problems = []
    if orphans:
        problems.append(f"{orphans} job(s) hold capacity without a technician")
    if waiting_with_tech:
        problems.append(f"{waiting_with_tech} new/unable job(s) still name a technician")
    for tid, open_jobs, capacity in techs:
        holding = held.get(tid, 0)
        if open_jobs != holding:
            problems.append(f"technician {tid}: open_jobs={open_jobs} but holds {holding} job(s)")
        if not 0 <= open_jobs <= capacity:
            problems.append(f"technician {tid}: open_jobs={open_jobs} outside 0..{capacity}")
    return problems


def assert_capacity_consistent(database: Database) -> None:
    problems = capacity_problems(database)
    assert not problems, "\n".join(problems)


def stock_problems(database: Database) -> list[str]:
    """Everything wrong with stock bookkeeping: levels out of bounds, levels that the ledger
    does not add up to, or reservations that the job part lines do not account for."""
    with database.transaction(write=False) as session:
        levels = session.execute(select(Stock.location_id, Stock.part_id, Stock.on_hand, Stock.reserved)).all()
        ledger = {
            (row.location_id, row.part_id): (row.on_hand, row.reserved)
            for row in session.execute(
                select(
                    StockMovement.location_id,
                    StockMovement.part_id,
                    func.sum(StockMovement.on_hand_change).label("on_hand"),
                    func.sum(StockMovement.reserved_change).label("reserved"),
                ).group_by(StockMovement.location_id, StockMovement.part_id)
            )
        }
        held = dict(
            ((row.location_id, row.part_id), row.quantity)
            for row in session.execute(
                select(JobPart.location_id, JobPart.part_id, func.sum(JobPart.quantity).label("quantity"))
                .where(JobPart.state == JobPartState.reserved)
                .group_by(JobPart.location_id, JobPart.part_id)
            )
        )
    problems = []
    for location_id, part_id, on_hand, reserved in levels:
        key = (location_id, part_id)
        if not 0 <= reserved <= on_hand:
            problems.append(f"{key}: reserved={reserved} on_hand={on_hand}")
        if ledger.get(key, (0, 0)) != (on_hand, reserved):
            problems.append(f"{key}: ledger says {ledger.get(key)} but stock is {(on_hand, reserved)}")
        if held.get(key, 0) != reserved:
            problems.append(f"{key}: {held.get(key, 0)} reserved by job lines but stock says {reserved}")
    return problems
