"""Shift hours: is a technician on shift at an instant? Pure functions of ``now``.

Shifts are written in the technician's local time (what their contract says) and checked
by converting "now" to that zone, so they stay right across DST changes. A shift whose end
is before its start runs overnight, one whose end equals its start runs 24 hours; either
belongs to the day it starts on.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    # ZoneInfo keeps only a few zones strongly cached; reading the tz file again costs 50 us.
    return ZoneInfo(name)


def is_on_shift(
    now: datetime,
    *,
    start: time | None,
    end: time | None,
    days: str | None,
    timezone: str,
) -> bool:
    """``days`` holds ISO weekdays as digits ("12345" = Monday to Friday); None = every day."""
    if start is None or end is None:
        return True
    local = now.astimezone(_zone(timezone))
    clock = local.time().replace(tzinfo=None)
    weekdays = days or "1234567"
    if start < end:
        return str(local.isoweekday()) in weekdays and start <= clock < end
    # Overnight (or 24 hours, when start == end): the part before the start time belongs to
    # yesterday's shift.
    if clock >= start:
        return str(local.isoweekday()) in weekdays
    if clock < end:
        yesterday = (local - timedelta(days=1)).isoweekday()
        return str(yesterday) in weekdays
    return False
