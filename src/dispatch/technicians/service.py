"""Technicians: who they are, what they can repair, where they are, how busy they are."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from dispatch import versions
from dispatch.clock import ensure_not_future
from dispatch.errors import NotFound
from dispatch.geo import lat_band
from dispatch.paging import Cut, Keyset
from dispatch.schemas import Id
from dispatch.technicians.models import Technician, TechnicianSkill
from dispatch.technicians.schemas import (
    LocationReport,
    TechnicianCreate,
    TechnicianUpdate,
)
from dispatch.technicians.shifts import is_on_shift


def get(*, session: Session, technician_id: int, for_update: bool = False) -> Technician:
    stmt = select(Technician).where(Technician.id == technician_id)
    if for_update:
        stmt = stmt.with_for_update()
    technician = session.scalar(stmt)
    if technician is None:
        raise NotFound(f"technician {technician_id} not found", code="technician-not-found")
    return technician


def skills_of(*, session: Session, technician_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {tid: [] for tid in technician_ids}
    if not technician_ids:
        return out
    rows = session.execute(
        select(TechnicianSkill.technician_id, TechnicianSkill.skill)
        .where(TechnicianSkill.technician_id.in_(technician_ids))
        .order_by(TechnicianSkill.technician_id, TechnicianSkill.skill)
    )
    for tid, skill in rows:
        out[tid].append(skill)
    return out


def _write_skills(session: Session, technician: Technician, skills: list[str]) -> None:
    session.execute(delete(TechnicianSkill).where(TechnicianSkill.technician_id == technician.id))
    unique = sorted(set(skills))
    session.execute(
        insert(TechnicianSkill),
        [
            {
                "technician_id": technician.id,
                "skill": skill,
                "lat_band": lat_band(technician.lat),
                "lat": technician.lat,
                "lon": technician.lon,
            }
            for skill in unique
        ],
    )


def _move_skills(session: Session, technician: Technician) -> None:
    session.execute(
        update(TechnicianSkill)
        .where(TechnicianSkill.technician_id == technician.id)
        .values(lat_band=lat_band(technician.lat), lat=technician.lat, lon=technician.lon)
    )


def create(*, session: Session, technician_in: TechnicianCreate, now: datetime) -> Technician:
    shift = technician_in.shift
    technician = Technician(
        name=technician_in.name,
        phone=technician_in.phone,
        lat=technician_in.lat,
        lon=technician_in.lon,
        location_at=now,
        capacity=technician_in.capacity,
        on_duty=technician_in.on_duty,
        active=technician_in.active,
        shift_start=shift.start if shift else None,
        shift_end=shift.end if shift else None,
        shift_days=_days(shift.days) if shift else None,
        timezone=shift.timezone if shift else "UTC",
        home_branch=technician_in.home_branch,
        created_at=now,
        updated_at=now,
    )
    session.add(technician)
    session.flush()
    _write_skills(session, technician, technician_in.skills)
    return technician


def _days(days: list[int]) -> str:
    return "".join(str(d) for d in sorted(set(days)))


def version(technician: Technician, skills: list[str]) -> str:
    """What a dispatcher's edit could overwrite (docs/decisions.md): not the phone's location or
    the open-job count, which move all day without anyone editing the technician."""
    return versions.version_of(
        technician.id,
        technician.name,
        technician.phone,
        technician.capacity,
        technician.on_duty,
        technician.active,
        technician.home_branch,
        technician.shift_start,
        technician.shift_end,
        technician.shift_days,
        technician.timezone,
        sorted(skills),
    )


def update_technician(
    *,
    session: Session,
    technician_id: int,
    technician_in: TechnicianUpdate,
    now: datetime,
    if_match: list[str] | None = None,
) -> Technician:
    technician = get(session=session, technician_id=technician_id, for_update=True)
    if if_match is not None:
        current = version(technician, skills_of(session=session, technician_ids=[technician_id])[technician_id])
        versions.check(if_match, current, what=f"technician {technician_id}")
    changes = technician_in.model_dump(exclude_unset=True)
    for field in ("name", "phone", "capacity", "on_duty", "active", "home_branch"):
        if field in changes:
            setattr(technician, field, changes[field])
    if "shift" in changes:
        shift = technician_in.shift
        technician.shift_start = shift.start if shift else None
        technician.shift_end = shift.end if shift else None
        technician.shift_days = _days(shift.days) if shift else None
        technician.timezone = shift.timezone if shift else "UTC"
    moved = changes.get("lat") is not None
    if moved:
        technician.lat, technician.lon = technician_in.lat, technician_in.lon  # type: ignore[assignment]
        technician.location_at = now
    technician.updated_at = now
    session.flush()
    if changes.get("skills") is not None:
        _write_skills(session, technician, changes["skills"])
    elif moved:
        _move_skills(session, technician)
    return technician


def report_location(
    *, session: Session, technician_id: int, report: LocationReport, now: datetime, skew_seconds: int
) -> Technician:
    """A phone's position. Reports that arrive late (queued offline) never overwrite newer ones."""
    at = report.at or now
    ensure_not_future(at, now=now, skew_seconds=skew_seconds, field=["at"])
    technician = get(session=session, technician_id=technician_id, for_update=True)
    if technician.location_at is not None and at <= technician.location_at:
        return technician
    technician.lat, technician.lon, technician.location_at = report.lat, report.lon, at
    technician.updated_at = now
    session.flush()
    _move_skills(session, technician)
    return technician


TECHNICIANS: Keyset[Technician] = Keyset("technicians", Id)


def list_technicians(
    *,
    session: Session,
    limit: int,
    cursor: str | None,
    skill: str | None = None,
    on_duty: bool | None = None,
    active: bool | None = None,
    home_branch: str | None = None,
) -> Cut[Technician]:
    stmt = select(Technician)
    if skill is not None:
        stmt = stmt.where(
            Technician.id.in_(select(TechnicianSkill.technician_id).where(TechnicianSkill.skill == skill))
        )
    if on_duty is not None:
        stmt = stmt.where(Technician.on_duty == on_duty)
    if active is not None:
        stmt = stmt.where(Technician.active == active)
    if home_branch is not None:
        stmt = stmt.where(Technician.home_branch == home_branch)
    return TECHNICIANS.fetch(session, stmt, Technician.id, cursor=cursor, limit=limit)


def ids_in_branch(branch: str) -> Select[tuple[int]]:
    """A subquery: the technicians whose home branch this is."""
    return select(Technician.id).where(Technician.home_branch == branch)


def on_shift_now(technician: Technician, now: datetime) -> bool:
    return is_on_shift(
        now,
        start=technician.shift_start,
        end=technician.shift_end,
        days=technician.shift_days,
        timezone=technician.timezone,
    )


def lock(*, session: Session, technician_ids: list[int]) -> None:
    """Lock technician rows in id order, so two transactions that touch the same technicians
    (say, swapping two jobs between them) queue instead of deadlocking."""
    session.execute(
        select(Technician.id)
        .where(Technician.id.in_(sorted(set(technician_ids))))
        .order_by(Technician.id)
        .with_for_update()
    ).all()


# Built once: dispatch runs these on every assignment.
_CLAIM = (
    update(Technician)
    .where(
        Technician.id == bindparam("technician_id"),
        Technician.open_jobs < Technician.capacity,
        Technician.active.is_(True),
    )
    .values(open_jobs=Technician.open_jobs + 1)
    .execution_options(synchronize_session=False)
)
_CLAIM_ON_DUTY = _CLAIM.where(Technician.on_duty.is_(True))
_RELEASE = (
    update(Technician)
    .where(Technician.id == bindparam("technician_id"), Technician.open_jobs > 0)
    .values(open_jobs=Technician.open_jobs - 1)
    .execution_options(synchronize_session=False)
)


def claim_capacity(*, session: Session, technician_id: int, require_on_duty: bool = True) -> bool:
    """Take one unit of the technician's capacity, atomically.

    The condition is re-checked by the database after waiting for any concurrent writer
    (Read Committed on PostgreSQL, serialised writers on SQLite): zero rows means full.
    """
    result = session.execute(_CLAIM_ON_DUTY if require_on_duty else _CLAIM, {"technician_id": technician_id})
    return result.rowcount == 1  # type: ignore[attr-defined]


def release_capacity(*, session: Session, technician_id: int) -> None:
    session.execute(_RELEASE, {"technician_id": technician_id})
