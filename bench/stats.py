"""Percentiles without numpy."""

from __future__ import annotations

import math


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan when empty."""
    if not values:
        return math.nan
    data = sorted(values)
    k = (len(data) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return data[lo]
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000.0 for s in seconds]
    return {
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
        "mean_ms": sum(ms) / len(ms) if ms else math.nan,
    }


class CpuMeter:
    """How many of the machine's cores were busy (anyone's work, not only ours) between
    ``start`` and ``stop``, from /proc/stat. Shows when something else ran during a measurement."""

    def __init__(self) -> None:
        self._start: tuple[int, int] | None = None

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]) - idle, sum(fields[:8])

    def start(self) -> CpuMeter:
        self._start = self._read()
        return self

    def stop(self) -> float:
        end = self._read()
        if self._start is None or end is None or end[1] == self._start[1]:
            return math.nan
        import os

        busy = (end[0] - self._start[0]) / (end[1] - self._start[1])
        return busy * (os.cpu_count() or 1)
