"""Dispatch: find the nearest available technician and assign the job atomically.

The search never measures every technician: it asks the database for technicians with the
skill inside a box around the customer (index on skill, latitude band, longitude), widens
the box until the nearest available one is provably inside it, and ranks only those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session

from dispatch.assignment.ranking import (
    Candidate,
    CandidateRow,
    PassedOver,
    Ranking,
    nearest,
    on_shift,
    rank,
)
from dispatch.assignment.schemas import CandidatePublic
from dispatch.auth.service import SYSTEM, Caller
from dispatch.config import Settings
from dispatch.errors import Conflict
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.geo import Box, box_around, geodesic_km
from dispatch.jobs import service as jobs
from dispatch.jobs.lifecycle import (
    DISPATCHABLE,
    HOLDS_CAPACITY,
    REASSIGNABLE,
    JobStatus,
)
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
    best: Candidate | None
    radius_km: float | None  # None: the whole area was searched


# Who qualifies is decided in SQL where it can be (active, on duty, under capacity); shift hours
# depend on each technician's time zone and are checked in Python on the few rows returned.
_AVAILABLE = (
    select(
        TechnicianSkill.technician_id,
        TechnicianSkill.lat,
        TechnicianSkill.lon,
        Technician.shift_start,
        Technician.shift_end,
        Technician.shift_days,
        Technician.timezone,
    )
    .join(Technician, Technician.id == TechnicianSkill.technician_id)
    .where(
        TechnicianSkill.skill == bindparam("skill"),
        Technician.active.is_(True),
        Technician.on_duty.is_(True),
        Technician.open_jobs < Technician.capacity,
    )
)
_AVAILABLE_IN_BOX = _AVAILABLE.where(
    TechnicianSkill.lat_band.in_(bindparam("bands", expanding=True)),
    TechnicianSkill.lon.between(bindparam("min_lon"), bindparam("max_lon")),
    TechnicianSkill.lat.between(bindparam("min_lat"), bindparam("max_lat")),
)

# Where the last search for a skill near a place ended, per 1-degree cell: the next search
# nearby starts there instead of at the smallest box. A speed hint only: results never depend
# on it, so it may differ between processes.
_radius_hints: dict[tuple[str, int, int], float] = {}
_MAX_HINTS = 50_000


def _available_rows(session: Session, skill: str, box: Box | None) -> list[Any]:
    if box is None:
        return list(session.execute(_AVAILABLE, {"skill": skill}))
    params = {
        "skill": skill,
        "bands": list(box.bands),
        "min_lon": box.min_lon,
        "max_lon": box.max_lon,
        "min_lat": box.min_lat,
        "max_lat": box.max_lat,
    }
    return list(session.execute(_AVAILABLE_IN_BOX, params))


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
    """The nearest available technician with ``skill``, searched in widening boxes."""
    limit = settings.dispatch_max_radius_km
    hint_key = (skill, math.floor(lat), math.floor(lon))
    radius: float | None = max(settings.dispatch_first_radius_km, _radius_hints.get(hint_key, 0.0))
    if limit is not None:
        radius = min(radius, limit)
    while True:
        box = box_around(lat, lon, radius) if radius is not None else None
        searched = radius if box is not None else None
        best = nearest(_available_rows(session, skill, box), lat=lat, lon=lon, now=now, exclude=exclude)
        if best is not None:
            distance = best.distance_km(lat, lon)
            if limit is not None and distance > limit:
                return Selection(None, searched)
            if searched is None or distance <= searched:
                if len(_radius_hints) >= _MAX_HINTS:
                    _radius_hints.clear()
                # Twice the distance found: the next search nearby most likely ends in one query.
                _radius_hints[hint_key] = max(settings.dispatch_first_radius_km, 2 * distance)
                return Selection(best, searched)
            # Someone is available but may not be the nearest: the box around their
            # distance holds everyone nearer, so one more search is conclusive.
            radius = distance * 1.0001 + 0.001
            continue
        if searched is None or (limit is not None and radius >= limit):
            return Selection(None, searched)
        radius *= 4
        if limit is not None:
            radius = min(radius, limit)
        elif radius > _WHOLE_AREA_KM:
            radius = None


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


def nearby(*, session: Session, lat: float, lon: float, skill: str, radius_km: float, now: datetime) -> Ranking:
    """Everyone with the skill within ``radius_km``, available or not, and why not: what a
    dispatcher sees beside a dispatch or a refusal. Not on the selection path."""
    box = box_around(lat, lon, radius_km)
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
    return rank((CandidateRow(*row) for row in session.execute(stmt)), lat=lat, lon=lon, now=now)


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


# How far around the customer a refusal looks for technicians to explain.
_EXPLAIN_RADIUS_KM = 100.0


def explain(
    *,
    session: Session,
    lat: float,
    lon: float,
    skill: str,
    now: datetime,
    settings: Settings,
    selection: Selection | None = None,
) -> list[CandidatePublic]:
    """The nearest technicians with the skill, with their distances and why each was passed over:
    within the area the search covered, or around the customer when nobody could go."""
    chosen = selection.best if selection is not None else None
    if chosen is not None:
        radius = max(chosen.distance_km(lat, lon) * 1.001 + 0.01, selection.radius_km or 0.0)  # type: ignore[union-attr]
    else:
        radius = min(_EXPLAIN_RADIUS_KM, settings.dispatch_max_radius_km or _EXPLAIN_RADIUS_KM)
    ranking = nearby(session=session, lat=lat, lon=lon, skill=skill, radius_km=radius, now=now)
    chosen_id = chosen.row.technician_id if chosen is not None else None
    shown = ranking.candidates[: settings.dispatch_candidates_shown]
    if chosen_id is not None and all(c.row.technician_id != chosen_id for c in shown):
        shown = [c for c in ranking.candidates if c.row.technician_id == chosen_id] + shown[:-1]
    out = [
        CandidatePublic(
            technician_id=c.row.technician_id,
            name=c.row.name,
            distance_km=round(c.distance_km(lat, lon), 3),
            available=c.available,
            # Available but not chosen: someone nearer, or they lost a race for their last slot.
            passed_over=None if c.row.technician_id == chosen_id else (c.passed_over or PassedOver.taken),
        )
        for c in shown
    ]
    out.sort(key=lambda c: (c.distance_km, c.technician_id))
    return out


@dataclass
class Choice:
    """A technician chosen and their capacity claimed, in the caller's transaction."""

    technician_id: int
    distance_km: float
    selection: Selection

    @property
    def details(self) -> dict[str, Any]:
        """What the timeline records about the choice."""
        return {
            "technician_id": self.technician_id,
            "distance_km": self.distance_km,
            "searched_radius_km": self.selection.radius_km,
        }


def choose(
    *,
    session: Session,
    lat: float,
    lon: float,
    skill: str,
    now: datetime,
    settings: Settings,
    explain_refusal: bool = False,
) -> Choice:
    """Claim the nearest available technician, or raise ``NoTechnicianAvailable`` (with the
    nearest candidates and why each was passed over, if ``explain_refusal``)."""
    exclude: set[int] = set()
    for _ in range(_MAX_CLAIM_ATTEMPTS):
        selection = find_nearest(
            session=session, lat=lat, lon=lon, skill=skill, now=now, settings=settings, exclude=frozenset(exclude)
        )
        best = selection.best
        if best is None:
            reason, detail = explain_unavailable(session=session, skill=skill, settings=settings)
            candidates = (
                [
                    c.model_dump(mode="json")
                    for c in explain(session=session, lat=lat, lon=lon, skill=skill, now=now, settings=settings)
                ]
                if explain_refusal
                else []
            )
            raise NoTechnicianAvailable(detail, reason=reason, candidates=candidates)
        technician_id = best.row.technician_id
        if technicians.claim_capacity(session=session, technician_id=technician_id):
            return Choice(technician_id, round(best.distance_km(lat, lon), 3), selection)
        exclude.add(technician_id)  # lost a race for their last slot: the next nearest
    raise Conflict(
        "too many concurrent dispatches competed for the same technicians; retry", code="dispatch-contention"
    )


@dataclass
class Dispatched:
    job: Job
    choice: Choice


def dispatch(*, session: Session, job_id: int, caller: Caller, now: datetime, settings: Settings) -> Dispatched:
    """Assign the job to the nearest available technician, or raise ``NoTechnicianAvailable``."""
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    return dispatch_job(session=session, job=job, caller=caller, now=now, settings=settings, explain_refusal=True)


def dispatch_explained(
    *, session: Session, job_id: int, caller: Caller, now: datetime, settings: Settings
) -> tuple[Dispatched, list[CandidatePublic]]:
    """A dispatcher's dispatch, with the nearest candidates and why each was passed over (a query
    of its own, made only here and in refusals, never on the auto-dispatch path)."""
    outcome = dispatch(session=session, job_id=job_id, caller=caller, now=now, settings=settings)
    job, choice = outcome.job, outcome.choice
    candidates = explain(
        session=session,
        lat=job.lat,  # type: ignore[arg-type]
        lon=job.lon,  # type: ignore[arg-type]
        skill=job.product_category,
        now=now,
        settings=settings,
        selection=choice.selection,
    )
    return outcome, candidates


def dispatch_job(
    *, session: Session, job: Job, caller: Caller, now: datetime, settings: Settings, explain_refusal: bool = False
) -> Dispatched:
    if job.status not in DISPATCHABLE:
        raise Conflict(
            f"job {job.id} is {job.status.value}; only new, unable or ready jobs are dispatched",
            code="job-not-dispatchable",
            current_status=job.status.value,
        )
    if job.lat is None or job.lon is None:
        raise Conflict(
            f"job {job.id} has no location yet; set it first (POST /v1/jobs/{job.id}/location)",
            code="job-needs-location",
        )
    choice = choose(
        session=session,
        lat=job.lat,
        lon=job.lon,
        skill=job.product_category,
        now=now,
        settings=settings,
        explain_refusal=explain_refusal,
    )
    details = choice.details
    jobs.mark_assigned(
        session=session,
        job=job,
        technician_id=details.pop("technician_id"),
        caller=caller,
        now=now,
        how=EventType.dispatched,
        **details,
    )
    return Dispatched(job=job, choice=choice)


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
            f"job {job.id} is {job.status.value}; it can be assigned only while new, unable, ready or assigned",
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
        session=session,
        job=job,
        technician_id=technician_id,
        caller=caller,
        now=now,
        how=EventType.assigned,
        reason=reason,
        distance_km=distance,
        **overrides,
    )
    return job


def send_back(
    *, session: Session, job: Job, previous: int | None, now: datetime, settings: Settings, **details: Any
) -> int | None:
    """Send a technician back to a job (its parts are in, or it needs a return visit): the one
    who was there if they can go (continuity), otherwise the nearest available one. With nobody
    available the job is ``ready`` for a dispatcher and the timeline says why. Returns who goes."""
    if previous is not None:
        technician = technicians.get(session=session, technician_id=previous)
        if (
            technician.active
            and technician.on_duty
            and technicians.on_shift_now(technician, now)
            and technicians.claim_capacity(session=session, technician_id=previous)
        ):
            jobs.mark_assigned(
                session=session,
                job=job,
                technician_id=previous,
                caller=SYSTEM,
                now=now,
                how=EventType.sent_back,
                continuity=True,
                **details,
            )
            return previous
    reason = "job-needs-location"
    if job.lat is not None and job.lon is not None:
        try:
            choice = choose(
                session=session, lat=job.lat, lon=job.lon, skill=job.product_category, now=now, settings=settings
            )
        except Conflict as exc:
            reason = exc.extra.get("reason", exc.code)
        else:
            found = choice.details
            technician_id = found.pop("technician_id")
            jobs.mark_assigned(
                session=session,
                job=job,
                technician_id=technician_id,
                caller=SYSTEM,
                now=now,
                how=EventType.sent_back,
                continuity=False,
                **found,
                **details,
            )
            return technician_id
    previous_status = job.status
    jobs.set_status(job, JobStatus.ready, now)
    job.technician_id = None
    jobs.touch(job, now)
    session.flush()
    events.record(
        session=session,
        job_id=job.id,
        type=EventType.status_changed,
        actor=SYSTEM.actor,
        now=now,  # type: ignore[arg-type]
        **{"from": previous_status.value},
        to=JobStatus.ready.value,
        previous_technician_id=previous,
        reason=reason,
        **details,
    )
    return None


def available_now(*, session: Session, skill: str, now: datetime) -> list[Any]:
    """Everyone with ``skill`` who could be sent now: active, on duty, under capacity, on shift.
    One query for the whole area: for a caller that asks about many places at once."""
    return [row for row in _available_rows(session, skill, None) if on_shift(row, now)]
