"""Business hours: counting only the time a contract says counts.

A calendar is written in local time (opening hours, breaks, holidays in the service centre's
zone) and the arithmetic converts each working interval to UTC, so it stays right across DST
changes: a 09:00 opening is 09:00 local on both sides of the switch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC as _UTC
from datetime import date, datetime, time, timedelta

from dispatch.clock import time_zone

# Two years without a working minute means the calendar is wrong, not that the job is late.
_MAX_DAYS = 800


@dataclass(frozen=True)
class BusinessHours:
    timezone: str
    days: str  # ISO weekdays as digits: "12345" = Monday to Friday
    opens: time
    closes: time
    breaks: tuple[tuple[time, time], ...] = ()
    holidays: frozenset[date] = field(default_factory=frozenset)

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of a local calendar day, as UTC instants."""
        if str(day.isoweekday()) not in self.days or day in self.holidays:
            return []
        zone = time_zone(self.timezone)
        pieces: list[tuple[time, time]] = []
        start = self.opens
        for break_start, break_end in sorted(self.breaks):
            if break_end <= start or break_start >= self.closes:
                continue
            if break_start > start:
                pieces.append((start, break_start))
            start = max(start, break_end)
        if start < self.closes:
            pieces.append((start, self.closes))
        return [
            (
                datetime.combine(day, a, tzinfo=zone).astimezone(_UTC),
                datetime.combine(day, b, tzinfo=zone).astimezone(_UTC),
            )
            for a, b in pieces
        ]


def add_working_time(start: datetime, amount: timedelta, hours: BusinessHours) -> datetime:
    """The instant at which ``amount`` of working time has passed since ``start``."""
    remaining = amount
    day = start.astimezone(time_zone(hours.timezone)).date()
    for _ in range(_MAX_DAYS):
        for opens, closes in hours.intervals(day):
            if closes <= start:
                continue
            opens = max(opens, start)
            if closes - opens >= remaining:
                return opens + remaining
            remaining -= closes - opens
        day += timedelta(days=1)
    raise ValueError("the calendar has no working time in the next two years")


def working_time_between(start: datetime, end: datetime, hours: BusinessHours) -> timedelta:
    """How much working time lies between two instants (zero if ``end`` is not after ``start``)."""
    total = timedelta()
    if end <= start:
        return total
    day = start.astimezone(time_zone(hours.timezone)).date()
    last = end.astimezone(time_zone(hours.timezone)).date()
    while day <= last:
        for opens, closes in hours.intervals(day):
            a, b = max(opens, start), min(closes, end)
            if b > a:
                total += b - a
        day += timedelta(days=1)
    return total
