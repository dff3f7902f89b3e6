from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from dispatch.jobs.schemas import JobPublic
from dispatch.schemas import Note, RequestBody, ResponseBody
from dispatch.visits.models import RETURN_REASONS, Visit, VisitOutcome, VisitReason

ReturnReason = Literal["callback_not_fixed", "compliance_failed", "fault_returned", "customer_request", "other"]


class VisitPublic(ResponseBody):
    id: int
    job_id: int
    number: int = Field(description="1 for the first trip, then 2, 3, ...")
    technician_id: int | None
    reason: VisitReason = Field(
        description="`first`, `follow_up` (after parts or an unfinished visit), or why a completed job was reopened"
    )
    return_visit: bool = Field(description="The job had been completed and was reopened for this visit")
    planned_at: datetime
    en_route_at: datetime | None = Field(description="Device times from the technician's taps")
    on_site_at: datetime | None
    left_at: datetime | None
    outcome: VisitOutcome | None = Field(description="null while the visit is planned or in progress")
    note: str | None

    @classmethod
    def of(cls, visit: Visit) -> VisitPublic:
        return cls(
            id=visit.id,
            job_id=visit.job_id,
            number=visit.number,
            technician_id=visit.technician_id,
            reason=visit.reason,
            return_visit=visit.reason in RETURN_REASONS,
            planned_at=visit.planned_at,
            en_route_at=visit.en_route_at,
            on_site_at=visit.on_site_at,
            left_at=visit.left_at,
            outcome=visit.outcome,
            note=visit.note,
        )


class ReturnVisitCreate(RequestBody):
    reason: ReturnReason
    note: Note | None = None


class ReturnVisitPublic(ResponseBody):
    job: JobPublic
    visit: VisitPublic
