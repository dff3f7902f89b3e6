"""SLA deadlines and states as pure functions of the clock.

The 24-hour promise: a job is due ``completion_hours`` after the customer reported it. It is
``at_risk`` once ``at_risk_ratio`` of the allowed time has gone or a breach is predicted (say, a
part arrives after the deadline), ``breached`` at the deadline,
and once finished it either ``met`` or ``missed`` its deadline.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class SlaState(str, enum.Enum):
    on_track = "on_track"
    at_risk = "at_risk"
    breached = "breached"
    met = "met"
    missed = "missed"
    cancelled = "cancelled"


OPEN_SLA_STATES = {SlaState.on_track, SlaState.at_risk, SlaState.breached}


@dataclass(frozen=True)
class Deadlines:
    due_at: datetime
    at_risk_at: datetime


def deadlines(reported_at: datetime, *, completion_hours: float, at_risk_ratio: float) -> Deadlines:
    allowed = timedelta(hours=completion_hours)
    return Deadlines(due_at=reported_at + allowed, at_risk_at=reported_at + allowed * at_risk_ratio)


def state(
    now: datetime,
    *,
    due_at: datetime,
    at_risk_at: datetime,
    completed_at: datetime | None,
    cancelled: bool = False,
    predicted_breach: bool = False,
) -> SlaState:
    if cancelled:
        return SlaState.cancelled
    if completed_at is not None:
        return SlaState.met if completed_at <= due_at else SlaState.missed
    if now >= due_at:
        return SlaState.breached
    if now >= at_risk_at or predicted_breach:
        return SlaState.at_risk
    return SlaState.on_track
