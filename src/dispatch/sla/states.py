"""SLA state as a function of the clock, in Python (for a job in hand) and in SQL (for lists).

The two forms live side by side so they cannot drift apart; tests check them against each other.

An open job races its *next* deadline: arrival on site while nobody has been there (policies
with an arrival target), then completion. It is

- ``breached`` once that deadline has passed, or if the technician arrived late (a missed
  arrival target stays missed);
- ``at_risk`` once the policy's share of the allowed time has gone (75 % by default), when a
  breach is predicted (a part arrives too late, the technician cannot get there in time or has
  more work than time), or when the appointment window ended with nobody on site (a no-show);
- ``on_track`` otherwise.

A finished job ``met`` its promise if it was completed by the completion deadline and no
arrival target was missed, else ``missed``. While the clock is paused (the customer asked for
a later visit) the job is judged as at the moment the pause began.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, not_, or_

from dispatch.jobs.lifecycle import OPEN, JobStatus
from dispatch.jobs.models import Job


class SlaState(str, enum.Enum):
    on_track = "on_track"
    at_risk = "at_risk"
    breached = "breached"
    met = "met"
    missed = "missed"
    cancelled = "cancelled"


# Why a job is in the at-risk queue, most serious first.
DEADLINE_PASSED = "deadline_passed"
ARRIVAL_MISSED = "arrival_missed"
NO_SHOW = "no_show"
TIME_ELAPSED = "time_elapsed"
BREACH_REASONS = (DEADLINE_PASSED, ARRIVAL_MISSED)


def reasons(job: Job, now: datetime) -> list[str]:
    """Why an open job is at risk or breached (empty: on track)."""
    if job.status not in OPEN or job.next_due_at is None:
        return []
    at = min(now, job.paused_at) if job.paused_at is not None else now
    found = []
    if at >= job.next_due_at:
        found.append(DEADLINE_PASSED)
    if job.arrival_missed:
        found.append(ARRIVAL_MISSED)
    if job.appointment_end is not None and job.arrived_at is None and now >= job.appointment_end:
        found.append(NO_SHOW)
    if job.predicted_breach is not None:
        found.append(job.predicted_breach)
    if job.next_at_risk_at is not None and at >= job.next_at_risk_at and DEADLINE_PASSED not in found:
        found.append(TIME_ELAPSED)
    return found


def state(job: Job, now: datetime) -> SlaState:
    if job.status is JobStatus.cancelled:
        return SlaState.cancelled
    if job.status not in OPEN:
        late = job.completed_at is None or job.completed_at > job.due_at
        return SlaState.missed if late or job.arrival_missed else SlaState.met
    found = reasons(job, now)
    if any(r in BREACH_REASONS for r in found):
        return SlaState.breached
    return SlaState.at_risk if found else SlaState.on_track


def _reached(column: Any, now: datetime) -> Any:
    """``column`` has come, judged at the start of a pause if the job is paused."""
    return or_(and_(Job.paused_at.is_(None), column <= now), and_(Job.paused_at.is_not(None), column <= Job.paused_at))


def breached_sql(now: datetime) -> Any:
    return and_(Job.next_due_at.is_not(None), or_(_reached(Job.next_due_at, now), Job.arrival_missed))


def at_risk_or_breached_sql(now: datetime) -> Any:
    """Open jobs in the at-risk queue. Only open jobs have a ``next_due_at``."""
    return and_(
        Job.next_due_at.is_not(None),
        or_(
            # Every term is NULL-safe, so NOT of this is exact (on_track is its complement).
            and_(Job.next_at_risk_at.is_not(None), _reached(Job.next_at_risk_at, now)),
            Job.arrival_missed,
            Job.predicted_breach.is_not(None),
            and_(Job.appointment_end.is_not(None), Job.appointment_end <= now, Job.arrived_at.is_(None)),
        ),
    )


def condition(state_: SlaState, now: datetime) -> Any:
    """The SQL form of ``state`` so lists filter by SLA state in the database."""
    finished = Job.status.not_in([s.value for s in OPEN | {JobStatus.cancelled}])
    late = or_(Job.completed_at.is_(None), Job.completed_at > Job.due_at, Job.arrival_missed)
    open_ = Job.status.in_([s.value for s in OPEN])
    return {
        SlaState.breached: and_(open_, breached_sql(now)),
        SlaState.at_risk: and_(open_, at_risk_or_breached_sql(now), not_(breached_sql(now))),
        SlaState.on_track: and_(open_, not_(at_risk_or_breached_sql(now))),
        SlaState.met: and_(finished, not_(late)),
        SlaState.missed: and_(finished, late),
        SlaState.cancelled: Job.status == JobStatus.cancelled,
    }.get(state_, false())
