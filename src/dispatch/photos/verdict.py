"""Was the photo taken at the customer's during the visit? A pure rule over what the photo says
about itself (EXIF capture time and GPS) and what we know of the visit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dispatch.geo import geodesic_km
from dispatch.photos.models import PhotoVerdict


@dataclass(frozen=True)
class Judgement:
    verdict: PhotoVerdict
    distance_m: float | None = None
    # How far outside the visit's window (with the slack not counted); 0 inside it.
    time_difference_seconds: int | None = None
    reasons: list[str] = field(default_factory=list)


def _human(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def judge(
    *,
    taken_at: datetime | None,
    taken_lat: float | None,
    taken_lon: float | None,
    customer: tuple[float, float] | None,
    window: tuple[datetime, datetime],
    max_distance_m: float,
    slack: timedelta,
) -> Judgement:
    """``verified`` when both the place and the time are there and both match; ``mismatch``
    when either is there and does not match; otherwise ``no_metadata``."""
    reasons: list[str] = []
    mismatch = False
    distance_m = None
    if taken_lat is not None and taken_lon is not None and customer is not None:
        distance_m = round(geodesic_km(taken_lat, taken_lon, customer[0], customer[1]) * 1000, 1)
        if distance_m > max_distance_m:
            mismatch = True
            reasons.append(f"taken {distance_m / 1000:.1f} km from the customer's address")
    elif taken_lat is None:
        reasons.append("the photo has no GPS position")
    else:
        reasons.append("the job has no coordinates to compare with")
    difference = None
    if taken_at is not None:
        start, end = window
        if taken_at < start:
            difference = int((start - taken_at).total_seconds())
            where = "before the visit began"
        elif taken_at > end:
            difference = int((taken_at - end).total_seconds())
            where = "after the visit ended"
        else:
            difference, where = 0, ""
        if difference > slack.total_seconds():
            mismatch = True
            reasons.append(f"taken {_human(difference)} {where}")
    else:
        reasons.append("the photo has no capture time")
    if mismatch:
        verdict = PhotoVerdict.mismatch
    elif distance_m is not None and difference is not None:
        verdict = PhotoVerdict.verified
    else:
        verdict = PhotoVerdict.no_metadata
    return Judgement(verdict=verdict, distance_m=distance_m, time_difference_seconds=difference, reasons=reasons)
