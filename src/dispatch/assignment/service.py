"""Dispatch: find the nearest available technician and assign the job atomically.

The search never measures every technician: it asks the database for technicians with the
skill inside a box around the customer (index on skill, latitude band, longitude), widens
the box until the nearest available one is provably inside it, and ranks only those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from dispatch.assignment.ranking import Candidate, CandidateRow, PassedOver, Ranking, rank
from dispatch.assignment.schemas import CandidatePublic
from dispatch.auth.service import Caller
from dispatch.config import Settings
from dispatch.errors import Conflict
from dispatch.geo import Box, box_around, geodesic_km
from dispatch.jobs import service as jobs
from dispatch.jobs.lifecycle import DISPATCHABLE, HOLDS_CAPACITY, REASSIGNABLE
from dispatch.jobs.models import Job
from dispatch.technicians import service as technicians
from dispatch.technicians.models import Technician, TechnicianSkill

# Past this radius a box buys nothing: search everyone with the skill.
_WHOLE_AREA_KM = 2500.0
# Each dispatch gives up after losing this many races for a technician's last slot.
_MAX_CLAIM_ATTEMPTS = 50


class NoTechnicianAvailable(Conflict):
    code = "no-technician-available"
    title = "No technician available"


@dataclass
class Selection:
    ranking: Ranking
    radius_km: float | None  # None: the whole area was searched

    @property
    def best(self) -> Candidate | None:
        return self.ranking.best


_COLUMNS = (
    TechnicianSkill.technician_id,
    Technician.name,
    TechnicianSkill.lat,
    TechnicianSkill.lon,
    Technician.active,
    Technician.on_duty,
    Technician.open_jobs,
    Technician.capacity,
    Technician.shift_start,
    Technician.shift_end,
    Technician.shift_days,
    Technician.timezone,
)


def _rows(session: Session, skill: str, box: Box | None) -> list[CandidateRow]:
    stmt = (
        select(*_COLUMNS)
        .join(Technician, Technician.id == TechnicianSkill.technician_id)
        .where(TechnicianSkill.skill == skill)
    )
    if box is not None:
        stmt = stmt.where(
            TechnicianSkill.lat_band.in_(list(box.bands)),
            TechnicianSkill.lon.between(box.min_lon, box.max_lon),
            TechnicianSkill.lat.between(box.min_lat, box.max_lat),
        )
    return [CandidateRow(*row) for row in session.execute(stmt)]


def find_nearest(
    *,
    session: Session,
    lat: float,
    lon: float,
    skill: str,
    now: datetime,
    settings: Settings,
    exclude: frozenset[int] = frozenset(),
) -> Selection:
    """The nearest available technician with ``skill``, and who else was near."""
    radius: float | None = settings.dispatch_first_radius_km
    limit = settings.dispatch_max_radius_km
    if limit is not None:
        radius = min(radius, limit)
    while True:
        box = box_around(lat, lon, radius) if radius is not None else None
        searched = radius if box is not None else None
        ranking = rank(_rows(session, skill, box), lat=lat, lon=lon, now=now, exclude=exclude)
        best = ranking.best
        if best is not None:
            distance = best.distance_km(lat, lon)
            if limit is not None and distance > limit:
                ranking.best = None
                return Selection(ranking, searched)
            if searched is None or distance <= searched:
                return Selection(ranking, searched)
            # Someone is available but may not be the nearest: the box around their
            # distance holds everyone nearer, so one more search is conclusive.
            radius = distance * 1.0001 + 0.001
            continue
        if searched is None or (limit is not None and radius >= limit):
            return Selection(ranking, searched)
        radius *= 4
        if limit is not None:
            radius = min(radius, limit)
        elif radius > _WHOLE_AREA_KM:
            radius = None


def explain_unavailable(*, session: Session, skill: str, settings: Settings) -> tuple[str, str]:
    """Why nobody qualifies, in the dispatcher's words: (reason, detail)."""
    available_flags = (Technician.active.is_(True)) & (Technician.on_duty.is_(True))
    total, on_duty, free = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((available_flags, 1), else_=0)), 0),
            func.coalesce(
                func.sum(case((available_flags & (Technician.open_jobs < Technician.capacity), 1), else_=0)), 0
            ),
        )
        .select_from(TechnicianSkill)
        .join(Technician, Technician.id == TechnicianSkill.technician_id)
        .where(TechnicianSkill.skill == skill)
    ).one()
    if total == 0:
        return "no_skill", f"no technician has the skill {skill!r}"
    if on_duty == 0:
        return "none_on_duty", f"none of the {total} technicians with the skill {skill!r} is on duty"
    if free == 0:
        return "all_at_capacity", f"every technician with the skill {skill!r} who is on duty is at capacity"
    if settings.dispatch_max_radius_km is not None:
        return (
            "none_in_range",
            f"no available technician with the skill {skill!r} within {settings.dispatch_max_radius_km:g} km",
        )
    return "none_on_shift", f"technicians with the skill {skill!r} are on duty but none is on shift now"


def shown_candidates(selection: Selection, settings: Settings) -> list[CandidatePublic]:
    ranking = selection.ranking
    shown = ranking.candidates[: settings.dispatch_candidates_shown]
    best = ranking.best
    if best is not None and best not in shown:
        shown = [best, *shown[:-1]]
    out = [
        CandidatePublic(
            technician_id=c.row.technician_id,
            name=c.row.name,
            distance_km=round(c.distance_km(ranking.lat, ranking.lon), 3),
            available=c.available,
            passed_over=None if c is best else (c.passed_over or PassedOver.taken),
        )
        for c in shown
    ]
    out.sort(key=lambda c: (c.distance_km, c.technician_id))
    return out


@dataclass
class Dispatched:
    job: Job
    technician_id: int
    distance_km: float
    selection: Selection


def dispatch(
    *, session: Session, job_id: int, caller: Caller, now: datetime, settings: Settings
) -> Dispatched:
    """Assign the job to the nearest available technician, or raise ``NoTechnicianAvailable``."""
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    return dispatch_job(session=session, job=job, caller=caller, now=now, settings=settings)


def dispatch_job(
    *, session: Session, job: Job, caller: Caller, now: datetime, settings: Settings
) -> Dispatched:
    if job.status not in DISPATCHABLE:
        raise Conflict(
            f"job {job.id} is {job.status.value}; only new or unable jobs are dispatched",
            code="job-not-dispatchable",
            current_status=job.status.value,
        )
    if job.lat is None or job.lon is None:
        raise Conflict(
            f"job {job.id} has no location yet; set it first (POST /v1/jobs/{job.id}/location)",
            code="job-needs-location",
        )
    exclude: set[int] = set()
    for _ in range(_MAX_CLAIM_ATTEMPTS):
        selection = find_nearest(
            session=session, lat=job.lat, lon=job.lon, skill=job.product_category,
            now=now, settings=settings, exclude=frozenset(exclude),
        )
        best = selection.best
        if best is None:
            reason, detail = explain_unavailable(session=session, skill=job.product_category, settings=settings)
            raise NoTechnicianAvailable(
                detail,
                reason=reason,
                candidates=[c.model_dump(mode="json") for c in shown_candidates(selection, settings)],
            )
        technician_id = best.row.technician_id
        if technicians.claim_capacity(session=session, technician_id=technician_id):
            distance = round(best.distance_km(job.lat, job.lon), 3)
            jobs.mark_assigned(
                session=session, job=job, technician_id=technician_id, caller=caller, now=now,
                how="dispatched", distance_km=distance, candidates_considered=len(selection.ranking.candidates),
                searched_radius_km=selection.radius_km,
            )
            return Dispatched(job=job, technician_id=technician_id, distance_km=distance, selection=selection)
        exclude.add(technician_id)
    raise Conflict(
        "too many concurrent dispatches competed for the same technicians; retry",
        code="dispatch-contention",
    )


def assign(
    *,
    session: Session,
    job_id: int,
    technician_id: int,
    reason: str,
    caller: Caller,
    now: datetime,
) -> Job:
    """A dispatcher's own choice. It may override skill and shift, never capacity or a block."""
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    if job.status not in REASSIGNABLE:
        raise Conflict(
            f"job {job.id} is {job.status.value}; it can be assigned only while new, unable or assigned",
            code="job-not-assignable",
            current_status=job.status.value,
        )
    if job.technician_id == technician_id:
        raise Conflict(f"job {job.id} is already assigned to technician {technician_id}", code="already-assigned")
    previous = job.technician_id if job.status in HOLDS_CAPACITY else None
    technicians.lock(session=session, technician_ids=[technician_id] + ([previous] if previous else []))
    technician = technicians.get(session=session, technician_id=technician_id)
    if not technician.active:
        raise Conflict(f"technician {technician_id} is blocked", code="technician-inactive")
    if not technicians.claim_capacity(session=session, technician_id=technician_id, require_on_duty=False):
        raise Conflict(
            f"technician {technician_id} is at capacity ({technician.capacity} open jobs)",
            code="technician-at-capacity",
        )
    if previous is not None:
        technicians.release_capacity(session=session, technician_id=previous)
    skills = technicians.skills_of(session=session, technician_ids=[technician_id])[technician_id]
    overrides: dict[str, Any] = {}
    if job.product_category not in skills:
        overrides["without_skill"] = True
    if not technician.on_duty or not technicians.on_shift_now(technician, now):
        overrides["off_duty"] = True
    distance = (
        round(geodesic_km(technician.lat, technician.lon, job.lat, job.lon), 3)
        if job.lat is not None and job.lon is not None
        else None
    )
    jobs.mark_assigned(
        session=session, job=job, technician_id=technician_id, caller=caller, now=now,
        how="assigned", reason=reason, distance_km=distance, **overrides,
    )
    return job

