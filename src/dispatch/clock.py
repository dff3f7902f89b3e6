"""The one injectable clock. Nothing else in the service asks the system for "now"."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to: tests move time instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        with self._lock:
            self._now += delta if delta is not None else timedelta(**kwargs)
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = instant.astimezone(UTC)


@lru_cache(maxsize=1024)
def time_zone(name: str) -> ZoneInfo:
    """An IANA time zone by name (shift hours, business hours, a camera's wall clock)."""
    # ZoneInfo keeps only a few zones strongly cached; reading the tz file again costs 50 us.
    return ZoneInfo(name)


def ensure_not_future(value: datetime, *, now: datetime, skew_seconds: int, field: list[str | int]) -> None:
    """Refuse a client timestamp from the future (beyond the allowed clock skew) with a 422."""
    from dispatch.errors import Unprocessable

    if value > now + timedelta(seconds=skew_seconds):
        name = ".".join(map(str, field))
        raise Unprocessable(
            f"{name} is in the future",
            code="timestamp-in-future",
            errors=[{"loc": ["body", *field], "msg": "must not be in the future", "type": "value_error"}],
        )
