"""KPIs: how the centre keeps its promise, computed from the jobs themselves.

Definitions are in docs/sla.md. A job belongs to the period in which it was *reported* (the
moment the promise was made), whatever happened to it later; a job still open at the time of
the query counts as not (yet) completed within 24 hours.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, String, and_, case, cast, func, not_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from dispatch.closeout.models import JobCallback
from dispatch.errors import Unprocessable
from dispatch.jobs.lifecycle import OPEN, JobStatus
from dispatch.jobs.models import Job
from dispatch.paging import Cut, Keyset
from dispatch.sla.models import PolicyName
from dispatch.technicians.models import Technician
from dispatch.visits.models import Visit, VisitOutcome

GroupBy = Literal["none", "outlet", "branch", "technician", "category"]
Interval = Literal["none", "day", "week", "month"]
DAY = 24 * 3600
MAX_DAYS = 400
MAX_LIMIT = 1000
STAGES = ("dispatch", "assigned", "travel", "on_site", "parts", "customer")


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def percentile(values: list[int], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(math.ceil(share * len(ordered)) - 1, 0)])


POLICIES = tuple(p.value for p in PolicyName)  # the values ``job.sla_policy`` takes (``sla.policies.plan`` sets it)
DEADLINES = ("arrival", "completion")  # in the order a row lists them (sorted by policy, then deadline)


def public(row: Any, p90: int | None) -> dict[str, Any]:
    """One row of ``_totals`` (the sums of one period and group) as the KPIs (docs/sla.md), in
    the response's field order; ``p90`` the 90th percentile of its resolution times (seconds)."""
    counted = row.jobs - row.cancelled
    completed = row.completed
    mean = row.resolution_sum / completed if completed else None
    sla = []
    # A (policy, deadline) is listed once some job of the row decided it.
    for policy in sorted(POLICIES):
        for deadline in DEADLINES:
            met, missed = getattr(row, f"{policy}_{deadline}_met"), getattr(row, f"{policy}_{deadline}_missed")
            if met or missed:
                sla.append(
                    {
                        "policy": policy,
                        "deadline": deadline,
                        "met": met,
                        "missed": missed,
                        "compliance": round(met / (met + missed), 4),
                    }
                )
    seconds = [getattr(row, f"seconds_{stage}") for stage in STAGES]
    return {
        "jobs": row.jobs,
        "cancelled": row.cancelled,
        "open": row.open,
        "completed": completed,
        "completed_within_24h": row.within_24h,
        "completion_rate_24h": round(row.within_24h / counted, 4) if counted else None,
        "mean_hours_to_complete": round(mean / 3600, 2) if mean is not None else None,
        "p90_hours_to_complete": round(p90 / 3600, 2) if p90 is not None else None,
        "first_time_fix_rate": ratio(row.first_time_fixed, row.fixed),
        "return_visit_rate": ratio(row.returned, row.fixed),
        "callbacks": row.calls,
        "callback_reach_rate": ratio(row.reached, row.calls),
        "jobs_reached_by_callback": ratio(row.jobs_reached, row.jobs_called),
        "mean_satisfaction": round(row.satisfaction_sum / row.satisfaction_count, 2)
        if row.satisfaction_count
        else None,
        "sla_compliance": sla,
        "hours": {stage: round(s / 3600, 2) for stage, s in zip(STAGES, seconds, strict=True)},
        "hours_per_job": {
            stage: round(s / 3600 / counted, 2) if counted else None for stage, s in zip(STAGES, seconds, strict=True)
        },
    }


def _period(dialect: str, interval: Interval) -> Any:
    """The UTC day, week (its Monday) or month (its first day) a job was reported in, as text
    (YYYY-MM-DD)."""
    if dialect == "postgresql":
        utc = func.timezone("UTC", Job.reported_at)
        if interval != "day":
            utc = func.date_trunc(interval, utc)  # weeks start on Monday (ISO)
        return func.to_char(utc, "YYYY-MM-DD", type_=String)
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC).
    if interval == "day":
        return func.substr(Job.reported_at, 1, 10, type_=String)
    if interval == "week":  # back six days, then forward to a Monday: the Monday on or before
        return func.date(func.substr(Job.reported_at, 1, 10), "-6 days", "weekday 1", type_=String)
    return func.substr(Job.reported_at, 1, 7, type_=String).concat("-01")


def _sum(condition: Any, value: Any = 1) -> Any:
    # An integer on both databases (PostgreSQL's sum of a bigint is a numeric: a Decimal here).
    return cast(func.coalesce(func.sum(case((condition, value), else_=0)), 0), BigInteger)


def _p90(dialect: str, completed: Any) -> Any:
    """The 90th percentile (nearest rank) of the resolution times of the completed jobs:
    ``percentile_disc`` on PostgreSQL (the same rank: the first value at or above 90 % of the
    ordered values); SQLite has none, so there the times come back as one comma-separated text
    per row and ``percentile`` takes it in Python."""
    if dialect == "postgresql":
        return func.percentile_disc(0.9).within_group(Job.resolution_seconds).filter(completed)
    return func.group_concat(case((completed, Job.resolution_seconds), else_=None), ",")


def _per_job(in_period: Any) -> tuple[Any, Any]:
    """Per job of the period: the number of its first visit that ended fixed, and its callbacks."""
    jobs_of_period = select(Job.id).where(in_period)
    visits = (
        select(Visit.job_id, func.min(case((Visit.outcome == VisitOutcome.fixed, Visit.number))).label("first_fixed"))
        .where(Visit.job_id.in_(jobs_of_period))
        .group_by(Visit.job_id)
        .subquery()
    )
    calls = (
        select(
            JobCallback.job_id,
            func.count().label("calls"),
            func.sum(case((JobCallback.reached, 1), else_=0)).label("reached"),
            func.sum(JobCallback.satisfaction).label("satisfaction_sum"),
            func.count(JobCallback.satisfaction).label("satisfaction_count"),
        )
        .where(JobCallback.job_id.in_(jobs_of_period))
        .group_by(JobCallback.job_id)
        .subquery()
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
    as jobs and as cancelled, and in nothing else. The deadlines' met and missed are counted per
    policy in columns of their own (``standard_completion_met``, ...), so a (period, group) is
    one row."""
    counted = Job.status != JobStatus.cancelled
    completed = and_(counted, Job.resolution_seconds.is_not(None), Job.completed_at.is_not(None))
    has_arrival = and_(counted, Job.arrival_due_at.is_not(None))
    # Each deadline counts once decided: met or missed when done, missed once it passed.
    decided = {
        ("completion", "met"): and_(counted, Job.completed_at.is_not(None), Job.completed_at <= Job.due_at),
        ("completion", "missed"): and_(
            counted,
            or_(
                and_(Job.completed_at.is_not(None), Job.completed_at > Job.due_at),
                and_(Job.completed_at.is_(None), Job.due_at <= now),
            ),
        ),
        ("arrival", "met"): and_(has_arrival, Job.arrived_at.is_not(None), not_(Job.arrival_missed)),
        ("arrival", "missed"): and_(
            has_arrival,
            or_(
                and_(Job.arrived_at.is_not(None), Job.arrival_missed),
                and_(Job.arrived_at.is_(None), Job.arrival_due_at <= now),
            ),
        ),
    }
    return [
        func.count().label("jobs"),
        _sum(Job.status == JobStatus.cancelled).label("cancelled"),
        _sum(Job.status.in_([s.value for s in OPEN])).label("open"),
        _sum(completed).label("completed"),
        _sum(and_(completed, Job.resolution_seconds <= DAY)).label("within_24h"),
        *(
            _sum(and_(Job.sla_policy == policy, condition)).label(f"{policy}_{deadline}_{outcome}")
            for policy in POLICIES
            for (deadline, outcome), condition in decided.items()
        ),
        *(_sum(counted, getattr(Job, f"seconds_{stage}")).label(f"seconds_{stage}") for stage in STAGES),
        _sum(completed, Job.resolution_seconds).label("resolution_sum"),
        _p90(dialect, completed).label("p90"),
    ]


def key_of(row: dict[str, Any]) -> tuple[str, str]:
    """Where a row sorts: by period, then by group as text (null first)."""
    return row["period"] or "", row["group"] or ""


ROWS: Keyset[dict[str, Any]] = Keyset("metrics", str, str, key=key_of)


def compute(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    now: datetime,
    group_by: GroupBy = "none",
    interval: Interval = "none",
    limit: int | None = None,
    after: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per (period, group), in order (``key_of``). Jobs reported in [since, until).
    With ``limit``, only the first ``limit`` rows whose key is after ``after`` (a page).

    One query, grouped by (period, group), makes every sum, the 90th percentile on PostgreSQL
    and its input on SQLite; here each row only becomes the KPIs. Fetching every job's columns
    and adding them up in Python took seconds for a month of a large centre, and so did a row
    per (day, group, policy) merged in Python when grouped by 5,000 technicians
    (docs/benchmarks.md, SLA and Metrics)."""
    dialect = session.get_bind().dialect.name
    keys: list[Any] = []
    if interval != "none":
        keys.append(_period(dialect, interval).label("period"))
    group = {
        "none": None,
        "outlet": Job.outlet_id,
        "technician": Job.technician_id,
        "category": Job.product_category,
        "branch": Technician.home_branch,
    }[group_by]
    if group is not None:
        if dialect == "sqlite":
            # Unary plus: the same value, but not a column an index could serve. Without it SQLite
            # (no statistics) reads the whole table in technician order through
            # ix_job_technician_id_status to save a sort, instead of the period's jobs through
            # ix_job_reported_at: 2.3-3.1 s of SQL instead of 1.1 s for a month of 344,000 jobs
            # (docs/benchmarks.md, Metrics).
            group = UnaryExpression(group, operator=custom_op("+"), type_=group.type)
        keys.append(group.label("grp"))
    in_period = and_(Job.reported_at >= since, Job.reported_at < until)
    visits, calls = _per_job(in_period)
    counted = Job.status != JobStatus.cancelled
    stmt = (
        select(*keys, *_totals(now, dialect), *_proof(counted, visits, calls))
        .select_from(Job)
        .outerjoin(visits, visits.c.job_id == Job.id)
        .outerjoin(calls, calls.c.job_id == Job.id)
    )
    if group_by == "branch":
        stmt = stmt.outerjoin(Technician, Technician.id == Job.technician_id)
    stmt = stmt.where(in_period).group_by(*keys)
    found = []
    for row in session.execute(stmt):
        if not row.jobs:  # ungrouped (no GROUP BY) a period without jobs is still one row: none, as before
            continue
        period = row.period if interval != "none" else None
        grp = row.grp if group is not None else None
        found.append(({"period": period, "group": None if grp is None else str(grp)}, row))
    found.sort(key=lambda kv: key_of(kv[0]))
    if after is not None:
        found = [kv for kv in found if key_of(kv[0]) > after]
    if limit is not None:
        found = found[:limit]
    out = []
    for head, row in found:  # the KPIs of the rows asked for only
        p90 = row.p90
        if dialect != "postgresql":
            p90 = percentile(list(map(int, p90.split(","))), 0.9) if p90 else None
        out.append(head | public(row, p90))
    return out


CSV_COLUMNS = (
    "period",
    "group",
    "jobs",
    "cancelled",
    "open",
    "completed",
    "completed_within_24h",
    "completion_rate_24h",
    "mean_hours_to_complete",
    "p90_hours_to_complete",
    "first_time_fix_rate",
    "return_visit_rate",
    "callbacks",
    "callback_reach_rate",
    "jobs_reached_by_callback",
    "mean_satisfaction",
    *(f"hours_{stage}" for stage in STAGES),
    *(f"hours_per_job_{stage}" for stage in STAGES),
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


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (a category an outlet typed as
    ``=HYPERLINK(...)``) is written with a leading apostrophe, as OWASP advises for CSV exports."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The monthly review's spreadsheet."""
    flat = csv_rows(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(flat[0]) if flat else list(CSV_COLUMNS))
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in flat)
    return out.getvalue()


def render(body: dict[str, Any]) -> bytes:
    """The JSON of a ``Metrics`` body given as dicts: the bytes ``Metrics.model_dump_json`` gives.

    Building the ``Metrics`` model first took 0.4-1.2 s for 5,000 rows (much of it the garbage
    collector walking the objects it makes) and serialised to the same bytes (docs/benchmarks.md,
    Metrics); tests/test_metrics.py checks the body against the model."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


# --- the report as asked for over HTTP --------------------------------------------------------


@dataclass(frozen=True)
class Report:
    since: date
    until: date
    group_by: GroupBy
    interval: Interval
    rows: list[dict[str, Any]]
    next_cursor: str | None

    @property
    def filename(self) -> str:
        return f"metrics-{self.since}-{self.until}.csv"

    def json(self) -> bytes:
        return render(
            {
                "since": self.since.isoformat(),
                "until": self.until.isoformat(),
                "group_by": self.group_by,
                "interval": self.interval,
                "rows": self.rows,
                "next_cursor": self.next_cursor,
            }
        )


def _invalid_period(detail: str, field: str, msg: str) -> Unprocessable:
    return Unprocessable(
        detail, code="invalid-period", errors=[{"loc": ["query", field], "msg": msg, "type": "value_error"}]
    )


def period(*, since: date | None, until: date | None, now: datetime) -> tuple[date, date]:
    """The days asked for, ``[since, until)`` in UTC: by default the 30 days up to today."""
    for name, day in (("since", since), ("until", until)):
        if day is not None and not 2000 <= day.year < 3000:
            raise _invalid_period(f"{name} must be between the years 2000 and 2999", name, "out of range")
    end = until or (now + timedelta(days=1)).date()
    start = since or end - timedelta(days=30)
    if start >= end or (end - start).days > MAX_DAYS:
        raise _invalid_period(f"since must be before until, at most {MAX_DAYS} days apart", "since", "invalid period")
    return start, end


def report(
    *,
    session: Session,
    since: date | None,
    until: date | None,
    now: datetime,
    group_by: GroupBy = "none",
    interval: Interval = "none",
    as_csv: bool = False,
    limit: int | None = None,
    cursor: str | None = None,
) -> Report:
    """The KPIs of the period asked for; with ``limit``, a page of its rows (the CSV is whole)."""
    start, end = period(since=since, until=until, now=now)
    if as_csv and (limit is not None or cursor is not None):
        raise Unprocessable(
            "the CSV is never paged: leave out limit and cursor",
            code="invalid-paging",
            errors=[{"loc": ["query", "limit"], "msg": "not with format=csv", "type": "value_error"}],
        )
    rows = compute(
        session=session,
        since=datetime.combine(start, time(), UTC),
        until=datetime.combine(end, time(), UTC),
        now=now,
        group_by=group_by,
        interval=interval,
        limit=None if limit is None else limit + 1,
        after=ROWS.decode(cursor),  # type: ignore[arg-type]
    )
    page = ROWS.cut(rows, limit) if limit is not None else Cut(rows)
    return Report(start, end, group_by, interval, page.items, page.next_cursor)
