from __future__ import annotations

from pydantic import Field

from dispatch.schemas import ResponseBody


class ComplianceRow(ResponseBody):
    policy: str
    deadline: str
    met: int
    missed: int
    compliance: float | None = Field(description="met / (met + missed); null when nothing was decided")


class StageHours(ResponseBody):
    dispatch: float | None = Field(description="Waiting for a technician to be chosen (new, unable, ready)")
    assigned: float | None = Field(description="Assigned, the technician not yet on the way")
    travel: float | None = Field(description="En route")
    on_site: float | None
    parts: float | None = Field(description="Waiting for parts")
    customer: float | None = Field(description="Waiting for the customer (SLA clock paused)")


class MetricsRow(ResponseBody):
    period: str | None = Field(description="First day of the day, week or month; null without an interval")
    group: str | None = Field(description="Outlet id, branch, technician id or category; null without grouping")
    jobs: int = Field(description="Jobs reported in the period")
    cancelled: int
    open: int
    completed: int
    completed_within_24h: int
    completion_rate_24h: float | None = Field(description="Completed within 24 h of the report / jobs not cancelled")
    mean_hours_to_complete: float | None
    p90_hours_to_complete: float | None
    first_time_fix_rate: float | None = Field(
        description="Of jobs with a visit that ended fixed: fixed on the first visit and never reopened"
    )
    return_visit_rate: float | None = Field(description="Of jobs with a visit that ended fixed: reopened at least once")
    callbacks: int = Field(description="Calls made to customers (every attempt)")
    callback_reach_rate: float | None = Field(description="Calls that reached the customer / calls made")
    jobs_reached_by_callback: float | None = Field(description="Jobs called whose customer was reached at least once")
    mean_satisfaction: float | None = Field(description="Mean of the 1-5 scores customers gave")
    sla_compliance: list[ComplianceRow]
    hours: StageHours = Field(description="Where the time went: hours summed over the jobs")
    hours_per_job: StageHours


class Metrics(ResponseBody):
    since: str
    until: str
    group_by: str
    interval: str
    rows: list[MetricsRow]
    next_cursor: str | None = Field(
        default=None, description="With `limit`: pass as `cursor` for the next rows; null on the last page."
    )
