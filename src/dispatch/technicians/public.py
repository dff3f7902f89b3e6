"""Technicians as the API shows them: built here and nowhere else."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy.orm import Session

from dispatch.paging import Cut, Page
from dispatch.technicians import service
from dispatch.technicians.models import Technician
from dispatch.technicians.schemas import ShiftPublic, TechnicianPublic


def one(session: Session, technician: Technician, now: datetime) -> tuple[TechnicianPublic, str]:
    """A technician, and their version: the ETag a dispatcher sends back as If-Match."""
    skills = service.skills_of(session=session, technician_ids=[technician.id])[technician.id]  # type: ignore[index]
    return to_public(technician, skills, now), service.version(technician, skills)


def page(session: Session, technicians: Cut[Technician], now: datetime) -> Page[TechnicianPublic]:
    skills = service.skills_of(session=session, technician_ids=[t.id for t in technicians.items])  # type: ignore[misc]
    return technicians.page(TechnicianPublic, lambda t: to_public(t, skills[t.id], now))  # type: ignore[index]


def _wall_clock(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def to_public(technician: Technician, skills: list[str], now: datetime) -> TechnicianPublic:
    on_shift = service.on_shift_now(technician, now)
    shift = (
        ShiftPublic(
            start=_wall_clock(technician.shift_start),
            end=_wall_clock(technician.shift_end),
            days=[int(d) for d in (technician.shift_days or "1234567")],
            timezone=technician.timezone,
        )
        if technician.shift_start is not None and technician.shift_end is not None
        else None
    )
    return TechnicianPublic(
        id=technician.id,  # type: ignore[arg-type]
        name=technician.name,
        phone=technician.phone,
        skills=skills,
        lat=technician.lat,
        lon=technician.lon,
        location_at=technician.location_at,
        capacity=technician.capacity,
        open_jobs=technician.open_jobs,
        on_duty=technician.on_duty,
        active=technician.active,
        shift=shift,
        home_branch=technician.home_branch,
        on_shift_now=on_shift,
        available_now=technician.active
        and technician.on_duty
        and on_shift
        and technician.open_jobs < technician.capacity,
        created_at=technician.created_at,
        updated_at=technician.updated_at,
    )
