from __future__ import annotations

from datetime import datetime

from pydantic import Field

from dispatch.assignment.ranking import PassedOver
from dispatch.jobs.schemas import JobPublic
from dispatch.schemas import ResponseBody


class CandidatePublic(ResponseBody):
    technician_id: int
    name: str
    distance_km: float = Field(description="Geodesic distance to the customer, from their last known position")
    location_at: datetime | None = Field(
        None, description="When that position was last set or reported by the phone: how stale the distance may be"
    )
    available: bool
    passed_over: PassedOver | None = Field(description="Why this technician was not chosen, if they were not")


class DispatchResult(ResponseBody):
    job: JobPublic
    technician_id: int
    distance_km: float
    searched_radius_km: float | None = Field(description="Null when the whole area was searched")
    candidates: list[CandidatePublic] = Field(description="The nearest technicians with the skill, chosen or not")
