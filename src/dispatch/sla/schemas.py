from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, StringConstraints, model_validator

from dispatch.jobs.lifecycle import JobStatus
from dispatch.jobs.models import Priority
from dispatch.schemas import LocalTime, Note, RequestBody, ResponseBody
from dispatch.sla.models import Audience, Deadline, Level, PolicyName
from dispatch.sla.policies import PAUSE_REASONS
from dispatch.technicians.schemas import TimeZoneName

PauseReason = Literal["customer_requested_later", "customer_unreachable"]
assert set(get_args(PauseReason)) == set(PAUSE_REASONS)
Ratio = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
Hours = Annotated[float, Field(gt=0, le=24 * 30, allow_inf_nan=False)]
Weekdays = Annotated[str, StringConstraints(pattern=r"^[1-7]{1,7}$")]


class Warning(ResponseBody):
    ratio: Ratio = Field(description="Share of the allowed time gone")
    notify: Audience


class WarningIn(RequestBody):
    ratio: Ratio
    notify: Audience


class BusinessHoursSpec(RequestBody):
    """Counted time on a calendar, in the service centre's time zone."""

    timezone: TimeZoneName
    days: Weekdays = Field(description="ISO weekdays as digits, 12345 = Monday to Friday", examples=["12345"])
    opens: LocalTime
    closes: LocalTime
    breaks: list[tuple[LocalTime, LocalTime]] = Field(default_factory=list, max_length=10)
    holidays: list[date] = Field(default_factory=list, max_length=400)

    @model_validator(mode="after")
    def _opens_before_closes(self) -> BusinessHoursSpec:
        if self.opens >= self.closes:
            raise ValueError("opens must be before closes")
        for start, end in self.breaks:
            if start >= end:
                raise ValueError("a break must start before it ends")
        return self


class SlaPolicyUpdate(RequestBody):
    arrival_hours: Hours | None = Field(description="On site within this many hours of the report; null: no target")
    completion_hours: Hours
    at_risk_ratio: Ratio = 0.75
    warnings: list[WarningIn] = Field(default_factory=list, max_length=5)
    business_hours: BusinessHoursSpec | None = Field(None, description="null: wall-clock time (the default)")
    pause_reasons: list[Literal["customer_requested_later", "customer_unreachable"]] = Field(default_factory=list)


class SlaPolicyPublic(ResponseBody):
    name: PolicyName
    arrival_hours: float | None
    completion_hours: float
    at_risk_ratio: float
    warnings: list[Warning]
    business_hours: dict[str, Any] | None
    pause_reasons: list[str]
    updated_at: datetime
    updated_by: str


class PauseCreate(RequestBody):
    reason: PauseReason
    note: Note | None = None


class AtRiskPublic(ResponseBody):
    job_id: int
    status: JobStatus
    priority: Priority
    policy: str
    technician_id: int | None
    customer_name: str
    customer_address: str
    state: Literal["at_risk", "breached"]
    deadline: Literal["arrival", "completion"]
    due_at: datetime
    time_left_seconds: int = Field(description="Negative once late")
    reasons: list[str]
    paused_since: datetime | None


class EscalationPublic(ResponseBody):
    id: int
    job_id: int
    deadline: Deadline
    level: Level
    notify: Audience
    fires_at: datetime
    fired_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class Acknowledgement(RequestBody):
    note: Note | None = None
