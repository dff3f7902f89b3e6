"""Sign-offs, callbacks, reviews and the closeout as the API shows them: built here and nowhere else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dispatch.closeout.models import JobCallback
from dispatch.closeout.schemas import (
    CallbackDuePublic,
    CallbackPublic,
    CallbackRecorded,
    CloseoutPublic,
    ReviewPublic,
    SignOffPublic,
)
from dispatch.closeout.service import Called, Closing, Reviewed, Signed
from dispatch.jobs.models import Job


def _callback(callback: JobCallback, visit_number: int) -> dict[str, Any]:
    return {
        "id": callback.id,
        "job_id": callback.job_id,
        "visit_number": visit_number,
        "attempt": callback.attempt,
        "reached": callback.reached,
        "fixed": callback.fixed,
        "satisfaction": callback.satisfaction,
        "note": callback.note,
        "retry_after": callback.retry_after,
        "called_at": callback.called_at,
        "called_by": callback.called_by,
    }


def callback(row: tuple[JobCallback, int]) -> CallbackPublic:
    return CallbackPublic(**_callback(*row))


def called(outcome: Called) -> CallbackRecorded:
    return CallbackRecorded(
        **_callback(outcome.callback, outcome.visit_number), job_status=outcome.job.status, missing=outcome.missing
    )


def signed(outcome: Signed) -> SignOffPublic:
    signoff, photo = outcome.signoff, outcome.photo
    return SignOffPublic(
        id=signoff.id,
        job_id=outcome.job.id,
        visit_number=outcome.visit.number,
        photo_id=photo.id,  # type: ignore[arg-type]
        photo_verdict=photo.verdict,
        signer_name=signoff.signer_name,
        signed_at=signoff.signed_at,
        recorded_by=signoff.recorded_by,
        job_status=outcome.job.status,
    )


def reviewed(outcome: Reviewed) -> ReviewPublic:
    entry = outcome.review
    return ReviewPublic(
        id=entry.id,
        job_id=outcome.job.id,
        visit_number=outcome.visit_number,
        passed=entry.passed,  # type: ignore[arg-type]
        reason=entry.reason,
        reviewed_by=entry.reviewed_by,
        reviewed_at=entry.reviewed_at,
        job_status=outcome.job.status,
        missing=outcome.missing,
    )


def closeout(answer: tuple[Job, Closing]) -> CloseoutPublic:
    job, state = answer
    return CloseoutPublic(
        job_id=job.id,
        status=job.status,
        closed_at=job.closed_at,
        visit_number=state.visit.number if state.visit else None,
        missing=state.missing,
        compliant=state.compliant,
        signer_name=state.signoff.signer_name if state.signoff else None,
        photo_id=state.photo.id if state.photo else None,
        photo_verdict=state.photo.verdict if state.photo else None,
        review_passed=state.review.passed if state.review else None,
        review_reason=state.review.reason if state.review else None,
        callback_fixed=state.callback.fixed if state.callback else None,
        satisfaction=state.callback.satisfaction if state.callback else None,
        unreached_attempts=state.unreached_attempts,
        retry_after=state.retry_after,
    )


def due(row: tuple[Job, int, datetime | None]) -> CallbackDuePublic:
    job, attempts, retry_after = row
    return CallbackDuePublic(
        job_id=job.id,
        customer_name=job.customer_name,
        customer_phone=job.customer_phone,  # type: ignore[arg-type]
        technician_id=job.technician_id,
        completed_at=job.completed_at,
        unreached_attempts=attempts,
        retry_after=retry_after,
    )
