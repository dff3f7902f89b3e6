"""KPIs: how the centre keeps its promise, computed from the jobs themselves.

Definitions are in docs/sla.md. A job belongs to the period in which it was *reported* (the
moment the promise was made), whatever happened to it later; a job still open at the time of
the query counts as not (yet) completed within 24 hours.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from dispatch.closeout.models import JobCallback
from dispatch.jobs.lifecycle import OPEN, JobStatus
from dispatch.jobs.models import Job
from dispatch.technicians.models import Technician
from dispatch.visits.models import Visit, VisitOutcome

GroupBy = Literal["none", "outlet", "branch", "technician", "category"]
Interval = Literal["none", "day", "week", "month"]
DAY = 24 * 3600
STAGES = ("dispatch", "assigned", "travel", "on_site", "parts", "customer")


def percentile(values: list[int], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(math.ceil(share * len(ordered)) - 1, 0)])


@dataclass
class Tally:
    jobs: int = 0
    cancelled: int = 0
    open: int = 0
    completed: int = 0
    within_24h: int = 0
    resolution: list[int] = field(default_factory=list)
    # (policy, deadline) -> [met, missed]
    sla: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    seconds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    fixed: int = 0  # jobs with a visit that ended fixed
    first_time_fixed: int = 0  # ... the very first visit, and never a return visit
    returned: int = 0  # ... reopened for a return visit at least once
    calls: int = 0
    reached: int = 0
    jobs_called: int = 0
    jobs_reached: int = 0
    satisfaction_sum: int = 0
    satisfaction_count: int = 0

    def add(self, row: Any, now: datetime) -> None:
        self.jobs += 1
        status = JobStatus(row.status)
        if status is JobStatus.cancelled:
            self.cancelled += 1
            return
        if status in OPEN:
            self.open += 1
        if row.resolution_seconds is not None and row.completed_at is not None:
            self.completed += 1
            self.resolution.append(row.resolution_seconds)
            if row.resolution_seconds <= DAY:
                self.within_24h += 1
        # Each deadline counts once decided: met or missed when done, missed once it passed.
        if row.completed_at is not None:
            self.sla[(row.sla_policy, "completion")][0 if row.completed_at <= row.due_at else 1] += 1
        elif row.due_at <= now:
            self.sla[(row.sla_policy, "completion")][1] += 1
        if row.arrival_due_at is not None:
            if row.arrived_at is not None:
                self.sla[(row.sla_policy, "arrival")][1 if row.arrival_missed else 0] += 1
            elif row.arrival_due_at <= now:
                self.sla[(row.sla_policy, "arrival")][1] += 1
        for stage in STAGES:
            self.seconds[stage] += getattr(row, f"seconds_{stage}")
        if row.first_fixed is not None:
            self.fixed += 1
            self.first_time_fixed += row.first_fixed == 1 and row.return_visits == 0
            self.returned += row.return_visits > 0
        if row.calls:
            self.calls += row.calls
            self.reached += row.reached
            self.jobs_called += 1
            self.jobs_reached += row.reached > 0
            self.satisfaction_sum += row.satisfaction_sum or 0
            self.satisfaction_count += row.satisfaction_count

    def public(self) -> dict[str, Any]:
        counted = self.jobs - self.cancelled
        mean = sum(self.resolution) / len(self.resolution) if self.resolution else None
        p90 = percentile(self.resolution, 0.9)
        return {
            "jobs": self.jobs,
            "cancelled": self.cancelled,
            "open": self.open,
            "completed": self.completed,
            "completed_within_24h": self.within_24h,
            "completion_rate_24h": round(self.within_24h / counted, 4) if counted else None,
            "mean_hours_to_complete": round(mean / 3600, 2) if mean is not None else None,
            "p90_hours_to_complete": round(p90 / 3600, 2) if p90 is not None else None,
            "sla_compliance": [
                {"policy": policy, "deadline": deadline, "met": met, "missed": missed,
                 "compliance": round(met / (met + missed), 4) if met + missed else None}
                for (policy, deadline), (met, missed) in sorted(self.sla.items())
            ],
            "first_time_fix_rate": ratio(self.first_time_fixed, self.fixed),
            "return_visit_rate": ratio(self.returned, self.fixed),
            "callbacks": self.calls,
            "callback_reach_rate": ratio(self.reached, self.calls),
            "jobs_reached_by_callback": ratio(self.jobs_reached, self.jobs_called),
            "mean_satisfaction": round(self.satisfaction_sum / self.satisfaction_count, 2)
            if self.satisfaction_count else None,
            "hours": {stage: round(self.seconds[stage] / 3600, 2) for stage in STAGES},
            "hours_per_job": {
                stage: round(self.seconds[stage] / 3600 / counted, 2) if counted else None for stage in STAGES
            },
        }


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def period_of(moment: datetime, interval: Interval) -> str | None:
    if interval == "none":
        return None
    day = moment.date()
    if interval == "day":
        return day.isoformat()
    if interval == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return day.replace(day=1).isoformat()


_COLUMNS = (
    Job.status, Job.reported_at, Job.completed_at, Job.due_at, Job.resolution_seconds, Job.sla_policy,
    Job.arrival_due_at, Job.arrived_at, Job.arrival_missed, Job.outlet_id, Job.technician_id, Job.product_category,
    Job.return_visits,
    *(getattr(Job, f"seconds_{stage}") for stage in STAGES),
)


def compute(
    *, session: Session, since: datetime, until: datetime, now: datetime, group_by: GroupBy = "none",
    interval: Interval = "none",
) -> list[dict[str, Any]]:
    """One row per (period, group), in order. Jobs reported in [since, until)."""
    in_period = select(Job.id).where(Job.reported_at >= since, Job.reported_at < until)
    # Per job: its visits (the number of the first that ended fixed) and its callbacks.
    visits = (
        select(Visit.job_id, func.min(case((Visit.outcome == VisitOutcome.fixed, Visit.number))).label("first_fixed"))
        .where(Visit.job_id.in_(in_period)).group_by(Visit.job_id).subquery()
    )
    calls = (
        select(
            JobCallback.job_id, func.count().label("calls"),
            func.sum(case((JobCallback.reached, 1), else_=0)).label("reached"),
            func.sum(JobCallback.satisfaction).label("satisfaction_sum"),
            func.count(JobCallback.satisfaction).label("satisfaction_count"),
        ).where(JobCallback.job_id.in_(in_period)).group_by(JobCallback.job_id).subquery()
    )
    stmt = (
        select(*_COLUMNS, visits.c.first_fixed, calls.c.calls, calls.c.reached, calls.c.satisfaction_sum,
               calls.c.satisfaction_count)
        .outerjoin(visits, visits.c.job_id == Job.id).outerjoin(calls, calls.c.job_id == Job.id)
        .where(Job.reported_at >= since, Job.reported_at < until)
    )
    if group_by == "branch":
        stmt = stmt.add_columns(Technician.home_branch).outerjoin(Technician, Technician.id == Job.technician_id)
    key_of = {
        "none": lambda r: None,
        "outlet": lambda r: r.outlet_id,
        "technician": lambda r: r.technician_id,
        "category": lambda r: r.product_category,
        "branch": lambda r: r.home_branch,
    }[group_by]
    tallies: dict[tuple[str | None, Any], Tally] = defaultdict(Tally)
    # Plain fetch: PostgreSQL reads run in autocommit, where a server-side cursor is not allowed.
    for row in session.execute(stmt):
        tallies[(period_of(row.reported_at, interval), key_of(row))].add(row, now)
    return [
        {"period": period, "group": None if group is None else str(group), **tally.public()}
        for (period, group), tally in sorted(tallies.items(), key=lambda kv: (kv[0][0] or "", str(kv[0][1] or "")))
    ]


CSV_COLUMNS = (
    "period", "group", "jobs", "cancelled", "open", "completed", "completed_within_24h", "completion_rate_24h",
    "mean_hours_to_complete", "p90_hours_to_complete", "first_time_fix_rate", "return_visit_rate", "callbacks",
    "callback_reach_rate", "jobs_reached_by_callback", "mean_satisfaction",
    *(f"hours_{stage}" for stage in STAGES), *(f"hours_per_job_{stage}" for stage in STAGES),
)


def csv_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for the monthly review's spreadsheet; SLA compliance one column per policy and deadline."""
    keys = sorted({(c["policy"], c["deadline"]) for r in rows for c in r["sla_compliance"]})
    flat = []
    for r in rows:
        out = {k: r[k] for k in CSV_COLUMNS[:16]}
        out.update({f"hours_{s}": r["hours"][s] for s in STAGES})
        out.update({f"hours_per_job_{s}": r["hours_per_job"][s] for s in STAGES})
        by_key = {(c["policy"], c["deadline"]): c["compliance"] for c in r["sla_compliance"]}
        out.update({f"sla_{p}_{d}": by_key.get((p, d)) for p, d in keys})
        flat.append(out)
    return flat
