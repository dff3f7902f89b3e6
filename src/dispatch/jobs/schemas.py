from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from dispatch.jobs.lifecycle import JobStatus
from dispatch.jobs.models import Priority, ServiceTier
from dispatch.schemas import (
    Category,
    Day,
    Id,
    Latitude,
    Longitude,
    Note,
    Phone,
    RequestBody,
    ResponseBody,
    ShortText,
    Timestamp,
    WithOptionalPosition,
)
from dispatch.sla.states import SlaState

Address = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]
Fault = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
ExternalRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ProductText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Customer(WithOptionalPosition):
    """Without lat and lon, the address is geocoded."""

    name: ShortText
    phone: Phone | None = None
    address: Address
    lat: Latitude | None = None
    lon: Longitude | None = None


class Product(RequestBody):
    category: Category
    model: ProductText | None = None
    serial: ProductText | None = None
    batch: ProductText | None = None
    purchased_on: Day | None = None


class AppointmentWindow(RequestBody):
    start: Timestamp
    end: Timestamp

    @model_validator(mode="after")
    def _ordered(self) -> AppointmentWindow:
        if self.end <= self.start:
            raise ValueError("the appointment window must end after it starts")
        return self


class JobCreate(RequestBody):
    customer: Customer
    product: Product
    fault: Fault
    priority: Priority = Priority.normal
    service_tier: ServiceTier = ServiceTier.standard
    reported_at: Timestamp | None = Field(
        default=None, description="When the customer first reported the fault; default: when received"
    )
    appointment: AppointmentWindow | None = None
    external_ref: ExternalRef | None = Field(default=None, description="The outlet's own order number")


class JobLocation(RequestBody):
    lat: Latitude
    lon: Longitude


# What a phone or a dispatcher may report; `new` and `assigned` come only from intake and dispatch.
ReportedStatus = Literal["en_route", "on_site", "completed", "unable", "cancelled"]


class StatusChange(WithOptionalPosition):
    status: ReportedStatus = Field(description="Technicians report all but `cancelled`")
    at: Timestamp = Field(description="Device time when it happened")
    lat: Latitude | None = None
    lon: Longitude | None = None
    note: Note | None = None
    outcome: Literal["not_fixed", "customer_absent"] | None = Field(
        None, description="With `unable`: how the visit ended (default `not_fixed`)"
    )

    @model_validator(mode="after")
    def _outcome_only_when_unable(self) -> StatusChange:
        if self.outcome is not None and self.status != "unable":
            raise ValueError("outcome is given only with status `unable`")
        return self


class AssignRequest(RequestBody):
    technician_id: Id
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class CustomerPublic(ResponseBody):
    name: str
    phone: str | None
    address: str
    lat: float | None
    lon: float | None


class ProductPublic(ResponseBody):
    category: str
    model: str | None
    serial: str | None
    batch: str | None
    purchased_on: date | None


class AppointmentPublic(ResponseBody):
    start: datetime
    end: datetime


class DeadlinePublic(ResponseBody):
    """One target of the job's SLA policy."""

    deadline: Literal["arrival", "completion"]
    due_at: datetime
    at_risk_at: datetime
    done_at: datetime | None = Field(description="When the technician arrived, or the job was completed")
    outcome: Literal["pending", "met", "missed"]


class SlaPublic(ResponseBody):
    policy: str = Field(description="The SLA policy the job is held to: standard, express or emergency")
    state: SlaState
    due_at: datetime = Field(description="The completion deadline")
    at_risk_at: datetime
    deadlines: list[DeadlinePublic] = Field(description="Every deadline that applies")
    next_deadline: Literal["arrival", "completion"] | None = Field(
        description="The deadline the job is racing now; none once finished"
    )
    next_due_at: datetime | None
    time_left_seconds: int = Field(
        description="Until the next deadline (the completion deadline once finished); negative once late"
    )
    reasons: list[str] = Field(
        default_factory=list,
        description="Why the job is at risk or breached: deadline_passed, arrival_missed, no_show, time_elapsed, "
        "or a predicted breach",
    )
    predicted_breach: str | None = Field(
        None, description="Why the deadline is expected to be missed before it comes, e.g. `parts_eta_after_due`"
    )
    paused_since: datetime | None = Field(None, description="The SLA clock is stopped (a pause the policy allows)")
    return_visits: int = Field(
        0, description="Times the job was reopened after completion; the deadline stays the first one"
    )


class PartWaitPublic(ResponseBody):
    """A part the job is waiting for."""

    sku: str
    quantity: int
    state: Literal["backordered", "in_transit"]
    eta: datetime | None


Attention = Literal["no_location", "no_skilled_technician", "gave_back", "dispatch_failed"]


class ArrivalPublic(ResponseBody):
    """Who is coming and when: what a shop may pass on to its customer, and nothing more."""

    technician_first_name: str
    window_start: datetime
    window_end: datetime
    basis: Literal["appointment", "deadline"] = Field(
        description="`appointment`: the window agreed with the customer; `deadline`: from now until the "
        "deadline the job is racing (on site for express and emergency jobs, else completed)"
    )


class JobPublic(ResponseBody):
    id: int
    status: JobStatus
    outlet_id: int | None
    external_ref: str | None
    customer: CustomerPublic
    product: ProductPublic
    fault: str
    priority: Priority
    service_tier: ServiceTier
    reported_at: datetime
    received_at: datetime
    due_at: datetime
    appointment: AppointmentPublic | None
    needs_location: bool = Field(description="No coordinates yet: a dispatcher must set them")
    technician_id: int | None
    assigned_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    closed_at: datetime | None = None
    sla: SlaPublic
    waiting_for_parts: list[PartWaitPublic] = Field(
        default_factory=list, description="Parts backordered or on their way; the job waits for these"
    )
    parts_eta: datetime | None = Field(None, description="When the last part the job waits for should arrive")
    attention: Attention | None = Field(
        None,
        description="Why the job waits for a person rather than the next automatic step: `no_location` (the "
        "address could not be placed), `no_skilled_technician` (no active technician has the category), "
        "`gave_back` (the technician reported `unable`), `dispatch_failed` (automatic dispatch found nobody)",
    )
    arrival: ArrivalPublic | None = Field(
        None, description="While a technician is assigned or on the way: their first name and the arrival window"
    )
    version: int
    updated_at: datetime


class IntakeWarning(ResponseBody):
    code: Literal["unknown-category"]
    detail: str


class JobCreated(JobPublic):
    warnings: list[IntakeWarning] = Field(
        default_factory=list,
        description="Accepted, but it will not go ahead by itself: `unknown-category` when no active "
        "technician has the product category (a typo, or a category nobody repairs yet)",
    )


JobOrder = Literal["due_at", "-due_at", "urgency"]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Query filters on the job list (the console's search box and branch filter).
JobSearch = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_no_nul)
]
BranchFilter = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(_no_nul)
]
