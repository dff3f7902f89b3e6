"""Time in the tests: where the frozen clock starts, and instants as the API writes them."""

from __future__ import annotations

from datetime import UTC, datetime

# A Tuesday, 10:00 in Warsaw: inside the usual shift hours.
T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def iso(instant: datetime) -> str:
    """An aware instant as the API returns it: UTC, with ``Z``."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
