"""Who is available, and who is nearest: the dispatch rules, free of any database.

Exact distances are geodesic (geopy) but they cost about 60 us each, so candidates are first
ordered by a spherical estimate and only those that could still be nearest (within the
sphere-vs-ellipsoid error of the best estimate) are measured exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import Enum
from typing import Any, Protocol

from dispatch.geo import SPHERE_ERROR, geodesic_km, haversine_km
from dispatch.technicians.shifts import is_on_shift


class PassedOver(str, Enum):
    """Why a technician with the right skill was not chosen."""

    # Reported `unable` on this very job ("van broke down"): never sent back to it by dispatch;
    # a dispatcher who knows better may still assign them by hand.
    gave_back = "gave_back"
    inactive = "inactive"
    off_duty = "off_duty"
    off_shift = "off_shift"
    at_capacity = "at_capacity"
    taken = "taken"  # lost a race for their last unit of capacity during this dispatch
    further = "further"  # available, but someone nearer was sent


@dataclass(frozen=True)
class CandidateRow:
    technician_id: int
    name: str
    lat: float
    lon: float
    active: bool
    on_duty: bool
    open_jobs: int
    capacity: int
    shift_start: time | None
    shift_end: time | None
    shift_days: str | None
    timezone: str
    location_at: datetime | None = None  # when the phone last said where they are


class Located(Protocol):
    """What ranking needs of a row: who, where, and their shift (read only: rows are frozen)."""

    @property
    def technician_id(self) -> int: ...
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...
    @property
    def shift_start(self) -> time | None: ...
    @property
    def shift_end(self) -> time | None: ...
    @property
    def shift_days(self) -> str | None: ...
    @property
    def timezone(self) -> str: ...


@dataclass
class Candidate:
    row: Any  # a CandidateRow, or any row that is Located
    estimate_km: float
    passed_over: PassedOver | None
    exact_km: float | None = None

    @property
    def available(self) -> bool:
        return self.passed_over is None

    def distance_km(self, lat: float, lon: float) -> float:
        if self.exact_km is None:
            self.exact_km = geodesic_km(lat, lon, self.row.lat, self.row.lon)
        return self.exact_km


def on_shift(row: Located, now: datetime) -> bool:
    return is_on_shift(now, start=row.shift_start, end=row.shift_end, days=row.shift_days, timezone=row.timezone)


def nearest(
    rows: Iterable[Located], *, lat: float, lon: float, now: datetime, exclude: frozenset[int] = frozenset()
) -> Candidate | None:
    """The nearest on-shift technician among rows the database already found available
    (active, on duty, under capacity). Shift hours are checked only as far as needed."""
    by_estimate = sorted(
        ((haversine_km(lat, lon, r.lat, r.lon), r.technician_id, r) for r in rows if r.technician_id not in exclude),
        key=lambda t: (t[0], t[1]),
    )
    contenders: list[Candidate] = []
    cutoff = None
    for estimate, _, row in by_estimate:
        if cutoff is not None and estimate > cutoff:
            break
        if not on_shift(row, now):
            continue
        if cutoff is None:
            # Anyone within the sphere's error of the best estimate may be nearest.
            cutoff = estimate * (1 + SPHERE_ERROR) / (1 - SPHERE_ERROR) + 1e-6
        contenders.append(Candidate(row=row, estimate_km=estimate, passed_over=None))
    if not contenders:
        return None
    return min(contenders, key=lambda c: (c.distance_km(lat, lon), c.row.technician_id))


def passed_over_reason(
    row: CandidateRow, now: datetime, exclude: frozenset[int], gave_back: frozenset[int] = frozenset()
) -> PassedOver | None:
    """Why ``row`` cannot be sent: ``exclude`` lost a race this dispatch, ``gave_back`` reported
    they cannot do this job. None: they could go."""
    if row.technician_id in gave_back:
        return PassedOver.gave_back
    if not row.active:
        return PassedOver.inactive
    if not row.on_duty:
        return PassedOver.off_duty
    if row.open_jobs >= row.capacity:
        return PassedOver.at_capacity
    if row.technician_id in exclude:
        return PassedOver.taken
    if not on_shift(row, now):
        return PassedOver.off_shift
    return None


@dataclass
class Ranking:
    lat: float
    lon: float
    candidates: list[Candidate] = field(default_factory=list)  # by estimated distance
    best: Candidate | None = None


def rank(
    rows: Iterable[CandidateRow],
    *,
    lat: float,
    lon: float,
    now: datetime,
    exclude: frozenset[int] = frozenset(),
    gave_back: frozenset[int] = frozenset(),
) -> Ranking:
    candidates = [
        Candidate(
            row=row,
            estimate_km=haversine_km(lat, lon, row.lat, row.lon),
            passed_over=passed_over_reason(row, now, exclude, gave_back),
        )
        for row in rows
    ]
    candidates.sort(key=lambda c: (c.estimate_km, c.row.technician_id))
    ranking = Ranking(lat=lat, lon=lon, candidates=candidates)
    best = nearest((c.row for c in candidates if c.available), lat=lat, lon=lon, now=now)
    if best is not None:
        ranking.best = next(c for c in candidates if c.row.technician_id == best.row.technician_id)
        ranking.best.exact_km = best.exact_km
    return ranking
