from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.closeout import service
from dispatch.closeout.models import JobCallback
from dispatch.closeout.schemas import (
    CallbackCreate,
    CallbackDuePublic,
    CallbackPublic,
    CallbackRecorded,
    CloseoutPublic,
    ReviewCreate,
    ReviewPublic,
    SignOffCreate,
    SignOffPublic,
)
from dispatch.deps import IdPath, LimitQuery, NowDep, SettingsDep, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.jobs.lifecycle import JobStatus
from dispatch.photos.models import Photo
from dispatch.schemas import Page
from dispatch.visits.models import Visit

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["closeout"], responses=problem_responses(400, 401, 403, 413, 422))
Staff = Depends(allow(Role.dispatcher, Role.supervisor))
callbacks_router = APIRouter(
    prefix="/v1/callbacks", tags=["closeout"], responses=problem_responses(400, 401, 403, 413, 422)
)


def _number(session: Session, visit_id: int) -> int:
    visit = session.get(Visit, visit_id)
    assert visit is not None
    return visit.number


def _callback(session: Session, callback: JobCallback) -> dict[str, object]:
    return {
        "id": callback.id,
        "job_id": callback.job_id,
        "visit_number": _number(session, callback.visit_id),
        "attempt": callback.attempt,
        "reached": callback.reached,
        "fixed": callback.fixed,
        "satisfaction": callback.satisfaction,
        "note": callback.note,
        "retry_after": callback.retry_after,
        "called_at": callback.called_at,
        "called_by": callback.called_by,
    }


@router.post("/signoff", status_code=201, response_model=SignOffPublic, responses=problem_responses(404, 409))
async def sign_off_job(
    job_id: IdPath,
    body: SignOffCreate,
    response: Response,
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.technician))],
) -> SignOffPublic:
    """The customer signs off the visit: their name and a photo of this job (uploaded first).
    One sign-off per visit; the job closes if this was all it was waiting for."""

    def work(session: Session) -> SignOffPublic:
        job, signoff = service.sign_off(
            session=session, job_id=job_id, signer_name=body.signer_name, photo_id=body.photo_id, caller=caller, now=now
        )
        photo = session.get(Photo, signoff.photo_id)
        assert photo is not None
        return SignOffPublic(
            id=signoff.id,
            job_id=job_id,
            visit_number=_number(session, signoff.visit_id),
            photo_id=photo.id,
            photo_verdict=photo.verdict,
            signer_name=signoff.signer_name,
            signed_at=signoff.signed_at,
            recorded_by=signoff.recorded_by,
            job_status=job.status,
        )

    return await uow.run(work)


@router.post("/callbacks", status_code=201, response_model=CallbackRecorded, responses=problem_responses(404, 409))
async def record_job_callback(
    job_id: IdPath,
    body: CallbackCreate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Staff],
) -> CallbackRecorded:
    """The call to the customer once the job is completed: reached or not, fixed or not,
    satisfaction 1-5. Unreached calls get a `retry_after`. Fixed and compliant: the job closes."""

    def work(session: Session) -> CallbackRecorded:
        job, callback = service.record_callback(
            session=session,
            job_id=job_id,
            reached=body.reached,
            fixed=body.fixed,
            satisfaction=body.satisfaction,
            note=body.note,
            caller=caller,
            now=now,
            settings=settings,
        )
        missing = service.closing(session, job).missing if job.status is not JobStatus.closed else []
        return CallbackRecorded(**_callback(session, callback), job_status=job.status, missing=missing)

    return await uow.run(work)


@router.get("/callbacks", response_model=Page[CallbackPublic], responses=problem_responses(404))
async def list_job_callbacks(
    job_id: IdPath, uow: UnitOfWorkDep, caller: Annotated[Caller, Staff]
) -> Page[CallbackPublic]:
    """Every call to the customer, oldest first."""
    return await uow.run(
        lambda session: Page[CallbackPublic](
            items=[
                CallbackPublic(**_callback(session, c))
                for c in service.callbacks_of(session=session, job_id=job_id, caller=caller)
            ]
        )
    )


@router.post("/compliance-reviews", status_code=201, response_model=ReviewPublic, responses=problem_responses(404, 409))
async def review_job_compliance(
    job_id: IdPath,
    body: ReviewCreate,
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.supervisor))],
) -> ReviewPublic:
    """A supervisor passes or fails the proof of work of the latest completed visit. Failing needs
    a reason and keeps the job from closing; passing accepts a photo whose EXIF did not match."""

    def work(session: Session) -> ReviewPublic:
        job, entry = service.review(
            session=session, job_id=job_id, passed=body.passed, reason=body.reason, caller=caller, now=now
        )
        return ReviewPublic(
            id=entry.id,
            job_id=job_id,
            visit_number=_number(session, entry.visit_id),
            passed=entry.passed,
            reason=entry.reason,
            reviewed_by=entry.reviewed_by,
            reviewed_at=entry.reviewed_at,
            job_status=job.status,
            missing=service.closing(session, job).missing,
        )

    return await uow.run(work)


@router.get("/closeout", response_model=CloseoutPublic, responses=problem_responses(404))
async def get_job_closeout(
    job_id: IdPath,
    uow: UnitOfWorkDep,
    caller: Annotated[Caller, Depends(allow(Role.dispatcher, Role.supervisor, Role.technician))],
) -> CloseoutPublic:
    """What the job still needs before it closes (it closes by itself once nothing is missing)."""

    def work(session: Session) -> CloseoutPublic:
        job, state = service.get_closing(session=session, job_id=job_id, caller=caller)
        return CloseoutPublic(
            job_id=job_id,
            status=job.status,
            closed_at=job.closed_at,
            visit_number=state.visit.number if state.visit else None,
            missing=state.missing,
            compliant=state.compliant and "job-not-completed" not in state.missing,
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

    return await uow.run(work)


@callbacks_router.get("/due", response_model=Page[CallbackDuePublic], dependencies=[Staff])
async def list_callbacks_due(uow: UnitOfWorkDep, now: NowDep, limit: LimitQuery = 50) -> Page[CallbackDuePublic]:
    """The dispatcher's call list: completed jobs whose customer has not been reached since the
    visit, never called or due again (`retry_after` passed), longest waiting first. The first
    `limit`; call those, and the list moves on."""
    return await uow.run(
        lambda session: Page[CallbackDuePublic](
            items=[
                CallbackDuePublic(
                    job_id=job.id,
                    customer_name=job.customer_name,
                    customer_phone=job.customer_phone,
                    technician_id=job.technician_id,
                    completed_at=job.completed_at,
                    unreached_attempts=attempts,
                    retry_after=retry_after,
                )
                for job, attempts, retry_after in service.callbacks_due(session=session, now=now, limit=limit)
            ]
        )
    )
