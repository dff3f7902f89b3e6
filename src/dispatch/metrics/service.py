"""KPIs: how the centre keeps its promise, computed from the jobs themselves.

Definitions are in docs/sla.md. A job belongs to the period in which it was *reported* (the
moment the promise was made), whatever happened to it later; a job still open at the time of
the query counts as not (yet) completed within 24 hours.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import String, Text, and_, case, cast, func, not_, or_, select
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
PROOF = ("fixed", "first_time_fixed", "returned", "calls", "reached", "jobs_called", "jobs_reached",
         "satisfaction_sum", "satisfaction_count")


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


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
    # From visits and callbacks (issue 5): see docs/sla.md for the definitions.
    proof: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROOF, 0))

    def add(self, row: Any) -> None:
        """Add one row of ``_totals``: the sums of one (day, group, policy)."""
        self.jobs += row.jobs
        self.cancelled += row.cancelled
        self.open += row.open
        self.completed += row.completed
        self.within_24h += row.within_24h
        # A (policy, deadline) is listed once some job decided it (as the Python rules had it).
        for deadline, met, missed in (("completion", row.completion_met, row.completion_missed),
                                      ("arrival", row.arrival_met, row.arrival_missed)):
            if met or missed:
                counts = self.sla[(row.sla_policy, deadline)]
                counts[0] += met
                counts[1] += missed
        for stage in STAGES:
            self.seconds[stage] += getattr(row, f"seconds_{stage}")
        for name in PROOF:
            self.proof[name] += getattr(row, name)

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
            "first_time_fix_rate": ratio(self.proof["first_time_fixed"], self.proof["fixed"]),
            "return_visit_rate": ratio(self.proof["returned"], self.proof["fixed"]),
            "callbacks": self.proof["calls"],
            "callback_reach_rate": ratio(self.proof["reached"], self.proof["calls"]),
            "jobs_reached_by_callback": ratio(self.proof["jobs_reached"], self.proof["jobs_called"]),
            "mean_satisfaction": round(self.proof["satisfaction_sum"] / self.proof["satisfaction_count"], 2)
            if self.proof["satisfaction_count"] else None,
            "hours": {stage: round(self.seconds[stage] / 3600, 2) for stage in STAGES},
            "hours_per_job": {
                stage: round(self.seconds[stage] / 3600 / counted, 2) if counted else None for stage in STAGES
            },
        }


def period_of(day: date, interval: Interval) -> str | None:
    if interval == "none":
        return None
    if interval == "day":
        return day.isoformat()
    if interval == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return day.replace(day=1).isoformat()


def _day(dialect: str) -> Any:
    """The UTC calendar day a job was reported, as text (YYYY-MM-DD)."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", Job.reported_at), "YYYY-MM-DD", type_=String)
    return func.substr(Job.reported_at, 1, 10, type_=String)  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)


def _sum(condition: Any, value: Any = 1) -> Any:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def _resolutions(dialect: str, completed: Any) -> Any:
    """The group's resolution times as one comma-separated text (for the 90th percentile): a
    row per group instead of a row per job."""
    value = case((completed, Job.resolution_seconds), else_=None)
    if dialect == "postgresql":
        return func.string_agg(cast(value, Text), ",")
    return func.group_concat(value, ",")


def _per_job(in_period: Any) -> tuple[Any, Any]:
    """Per job of the period: the number of its first visit that ended fixed, and its callbacks."""
    jobs_of_period = select(Job.id).where(in_period)
    visits = (
        select(Visit.job_id, func.min(case((Visit.outcome == VisitOutcome.fixed, Visit.number))).label("first_fixed"))
        .where(Visit.job_id.in_(jobs_of_period)).group_by(Visit.job_id).subquery()
    )
    calls = (
        select(
            JobCallback.job_id, func.count().label("calls"),
            func.sum(case((JobCallback.reached, 1), else_=0)).label("reached"),
            func.sum(JobCallback.satisfaction).label("satisfaction_sum"),
            func.count(JobCallback.satisfaction).label("satisfaction_count"),
        ).where(JobCallback.job_id.in_(jobs_of_period)).group_by(JobCallback.job_id).subquery()
    )
    return visits, calls


def _proof(counted: Any, visits: Any, calls: Any) -> list[Any]:
    fixed = and_(counted, visits.c.first_fixed.is_not(None))
    called = and_(counted, calls.c.calls.is_not(None))
    return [
        _sum(fixed).label("fixed"),
        _sum(and_(fixed, visits.c.first_fixed == 1, Job.return_visits == 0)).label("first_time_fixed"),
        _sum(and_(fixed, Job.return_visits > 0)).label("returned"),
        _sum(called, calls.c.calls).label("calls"),
        _sum(called, calls.c.reached).label("reached"),
        _sum(called).label("jobs_called"),
        _sum(and_(called, calls.c.reached > 0)).label("jobs_reached"),
        _sum(and_(called, calls.c.satisfaction_sum.is_not(None)), calls.c.satisfaction_sum).label("satisfaction_sum"),
        _sum(called, calls.c.satisfaction_count).label("satisfaction_count"),
    ]


def _totals(now: datetime, dialect: str) -> list[Any]:
    """The KPI sums of a group of jobs, in SQL (definitions in docs/sla.md). Cancelled jobs count
    as jobs and as cancelled, and in nothing else."""
    counted = Job.status != JobStatus.cancelled
    completed = and_(counted, Job.resolution_seconds.is_not(None), Job.completed_at.is_not(None))
    has_arrival = and_(counted, Job.arrival_due_at.is_not(None))
    return [
        func.count().label("jobs"),
        _sum(Job.status == JobStatus.cancelled).label("cancelled"),
        _sum(Job.status.in_([s.value for s in OPEN])).label("open"),
        _sum(completed).label("completed"),
        _sum(and_(completed, Job.resolution_seconds <= DAY)).label("within_24h"),
        # Each deadline counts once decided: met or missed when done, missed once it passed.
        _sum(and_(counted, Job.completed_at.is_not(None), Job.completed_at <= Job.due_at)).label("completion_met"),
        _sum(and_(counted, or_(and_(Job.completed_at.is_not(None), Job.completed_at > Job.due_at),
                               and_(Job.completed_at.is_(None), Job.due_at <= now)))).label("completion_missed"),
        _sum(and_(has_arrival, Job.arrived_at.is_not(None), not_(Job.arrival_missed))).label("arrival_met"),
        _sum(and_(has_arrival, or_(and_(Job.arrived_at.is_not(None), Job.arrival_missed),
                                   and_(Job.arrived_at.is_(None), Job.arrival_due_at <= now)))).label("arrival_missed"),
        *(_sum(counted, getattr(Job, f"seconds_{stage}")).label(f"seconds_{stage}") for stage in STAGES),
        _resolutions(dialect, completed).label("resolutions"),
    ]


def compute(
    *, session: Session, since: datetime, until: datetime, now: datetime, group_by: GroupBy = "none",
    interval: Interval = "none",
) -> list[dict[str, Any]]:
    """One row per (period, group), in order. Jobs reported in [since, until).

    The sums are made by the database in one pass, grouped by (day, group, policy), and merged
    into periods here; the resolution times (for the 90th percentile) come back as one text per
    row. Fetching every job's columns and adding them up in Python took seconds for a month of
    a large centre (docs/benchmarks.md, SLA)."""
    dialect = session.get_bind().dialect.name
    keys: list[Any] = []
    if interval != "none":
        keys.append(_day(dialect).label("day"))
    group = {"none": None, "outlet": Job.outlet_id, "technician": Job.technician_id,
             "category": Job.product_category, "branch": Technician.home_branch}[group_by]
    if group is not None:
        keys.append(group.label("grp"))
    in_period = and_(Job.reported_at >= since, Job.reported_at < until)
    visits, calls = _per_job(in_period)

    def source(stmt: Any) -> Any:
        stmt = stmt.select_from(Job).outerjoin(visits, visits.c.job_id == Job.id).outerjoin(calls, calls.c.job_id == Job.id)
        if group_by == "branch":
            stmt = stmt.outerjoin(Technician, Technician.id == Job.technician_id)
        return stmt.where(in_period)

    def key_of(row: Any) -> tuple[str | None, Any]:
        period = period_of(date.fromisoformat(row.day), interval) if interval != "none" else None
        return period, (row.grp if group is not None else None)

    tallies: dict[tuple[str | None, Any], Tally] = defaultdict(Tally)
    counted = Job.status != JobStatus.cancelled
    totals = source(select(*keys, Job.sla_policy, *_totals(now, dialect), *_proof(counted, visits, calls))).group_by(
        *keys, Job.sla_policy)
    for row in session.execute(totals):
        tally = tallies[key_of(row)]
        tally.add(row)
        if row.resolutions:
            tally.resolution.extend(map(int, row.resolutions.split(",")))
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
