"""Shift hours: is a technician on shift at an instant? Pure functions of ``now``.

Shifts are written in the technician's local time (what their contract says) and checked
by converting "now" to that zone, so they stay right across DST changes. A shift whose end
is before its start runs overnight, one whose end equals its start runs 24 hours; either
belongs to the day it starts on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

from dispatch.clock import time_zone


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
    local = now.astimezone(time_zone(timezone))
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


# Two years without a shift means the shift hours are wrong, not that the work takes that long.
_MAX_DAYS = 800


def shifts_from(
    since: datetime, *, start: time | None, end: time | None, days: str | None, timezone: str
) -> Iterator[tuple[datetime, datetime]]:
    """The technician's working intervals from ``since`` on, in UTC, the first one clipped to
    begin at ``since``. Without shift hours: one interval that never ends."""
    if start is None or end is None:
        yield since, datetime.max.replace(tzinfo=UTC)
        return
    zone = time_zone(timezone)
    weekdays = days or "1234567"
    day = since.astimezone(zone).date() - timedelta(days=1)  # an overnight shift may have begun yesterday
    for _ in range(_MAX_DAYS):
        if str(day.isoweekday()) in weekdays:
            ends_on = day if start < end else day + timedelta(days=1)
            opens = datetime.combine(day, start, tzinfo=zone).astimezone(UTC)
            closes = datetime.combine(ends_on, end, tzinfo=zone).astimezone(UTC)
            if closes > since:
                yield max(opens, since), closes
        day += timedelta(days=1)


class WorkingTime:
    """One shift pattern's working intervals from ``since`` on, as POSIX timestamps, generated as
    far as anyone asks and shared by every technician on the same hours (the watcher works
    through every open job each pass; a centre has a handful of shift patterns, not one per
    technician). Floats, because datetime arithmetic here is several times slower."""

    def __init__(
        self, since: datetime, *, start: time | None, end: time | None, days: str | None, timezone: str
    ) -> None:
        self._source = shifts_from(since, start=start, end=end, days=days, timezone=timezone)
        self._intervals: list[tuple[float, float]] = []

    def _interval(self, i: int) -> tuple[float, float]:
        while len(self._intervals) <= i:
            nxt = next(self._source, None)
            if nxt is None:
                return math.inf, math.inf
            opens, closes = nxt
            self._intervals.append((opens.timestamp(), closes.timestamp() if closes.year < 9999 else math.inf))
        return self._intervals[i]

    def finish_times(self, per_job: timedelta, count: int) -> list[float]:
        """When each of ``count`` jobs of ``per_job`` working time, done one after another,
        would be finished. ``inf``: not within two years."""
        out: list[float] = []
        i = 0
        opens, closes = self._interval(i)
        need = per_job.total_seconds()
        for _ in range(count):
            remaining = need
            while opens != math.inf and closes - opens < remaining:
                remaining -= closes - opens
                i += 1
                opens, closes = self._interval(i)
            opens += remaining
            out.append(opens)
        return out


def finish_times(
    since: datetime,
    per_job: timedelta,
    count: int,
    *,
    start: time | None,
    end: time | None,
    days: str | None,
    timezone: str,
) -> list[float]:
    """``WorkingTime.finish_times`` for one technician."""
    return WorkingTime(since, start=start, end=end, days=days, timezone=timezone).finish_times(per_job, count)
