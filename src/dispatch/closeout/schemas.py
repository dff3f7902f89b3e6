from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from dispatch.jobs.lifecycle import JobStatus
from dispatch.photos.models import PhotoVerdict
from dispatch.schemas import Id, Note, RequestBody, ResponseBody, ShortText

Satisfaction = Annotated[int, Field(strict=True, ge=1, le=5)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class SignOffCreate(RequestBody):
    signer_name: ShortText
    photo_id: Id


class SignOffPublic(ResponseBody):
    id: int
    job_id: int
    visit_number: int
    photo_id: int
    photo_verdict: PhotoVerdict
    signer_name: str
    signed_at: datetime
    recorded_by: str
    job_status: JobStatus = Field(description="`closed` if this was the last thing missing")


class CallbackCreate(RequestBody):
    reached: bool = Field(strict=True)
    fixed: bool | None = Field(None, strict=True, description="Required when reached: does the customer say it works?")
    satisfaction: Satisfaction | None = Field(None, description="1 (poor) to 5 (very good), when reached")
    note: Note | None = None


class CallbackPublic(ResponseBody):
    id: int
    job_id: int
    visit_number: int
    attempt: int = Field(description="Calls after this visit so far, this one included")
    reached: bool
    fixed: bool | None
    satisfaction: int | None
    note: str | None
    retry_after: datetime | None = Field(description="Unreached: when to call again")
    called_at: datetime
    called_by: str


class CallbackRecorded(CallbackPublic):
    job_status: JobStatus = Field(description="`closed` if this was the last thing missing")
    missing: list[str] = Field(description="What still keeps the job from closing")


class ReviewCreate(RequestBody):
    passed: bool = Field(strict=True)
    reason: Reason | None = Field(None, description="Required when the review fails")


class ReviewPublic(ResponseBody):
    id: int
    job_id: int
    visit_number: int
    passed: bool
    reason: str | None
    reviewed_by: str
    reviewed_at: datetime
    job_status: JobStatus
    missing: list[str]


class CloseoutPublic(ResponseBody):
    """Where the job stands on the way to closed."""

    job_id: int
    status: JobStatus
    closed_at: datetime | None
    visit_number: int | None = Field(description="The visit whose work is being closed")
    missing: list[str] = Field(
        description="Stable codes: `job-not-completed`, `signoff`, `photo-mismatch`, "
        "`compliance-review-failed`, `callback`, `callback-not-fixed`"
    )
    compliant: bool = Field(description="Sign-off present, its photo present and not a mismatch, no failed review")
    signer_name: str | None
    photo_id: int | None
    photo_verdict: PhotoVerdict | None
    review_passed: bool | None = Field(description="The latest review of this visit; null if none")
    review_reason: str | None
    callback_fixed: bool | None = Field(description="What the last call that reached the customer heard")
    satisfaction: int | None
    unreached_attempts: int = Field(description="Calls after this visit that reached nobody")
    retry_after: datetime | None = Field(description="When to call again, if the last call reached nobody")


class CallbackDuePublic(ResponseBody):
    """A completed job whose customer is waiting to be called back."""

    job_id: int
    customer_name: str
    customer_phone: str | None
    technician_id: int | None
    completed_at: datetime | None
    unreached_attempts: int = Field(description="Calls since the visit that reached nobody")
    retry_after: datetime | None = Field(
        description="When to call again (null: never called); still ahead only with `include_later`"
    )
