from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.closeout import public, service
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
from dispatch.deps import IdPath, NowDep, SettingsDep, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.paging import LimitQuery, Page

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["closeout"], responses=problem_responses(400, 401, 403, 413, 422))
Staff = Depends(allow(Role.dispatcher, Role.supervisor))
# Calling customers back is customer service's work, and the dispatchers' where there is none.
Callers = Depends(allow(Role.dispatcher, Role.supervisor, Role.customer_service))
callbacks_router = APIRouter(
    prefix="/v1/callbacks", tags=["closeout"], responses=problem_responses(400, 401, 403, 413, 422)
)


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

    return await uow.run(
        lambda session: public.signed(
            service.sign_off(
                session=session,
                job_id=job_id,
                signer_name=body.signer_name,
                photo_id=body.photo_id,
                caller=caller,
                now=now,
            )
        )
    )


@router.post("/callbacks", status_code=201, response_model=CallbackRecorded, responses=problem_responses(404, 409))
async def record_job_callback(
    job_id: IdPath,
    body: CallbackCreate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Callers],
) -> CallbackRecorded:
    """The call to the customer once the job is completed: reached or not, fixed or not,
    satisfaction 1-5. Unreached calls get a `retry_after`. Fixed and compliant: the job closes."""

    return await uow.run(
        lambda session: public.called(
            service.record_callback(
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
        )
    )


@router.get("/callbacks", response_model=Page[CallbackPublic], responses=problem_responses(404))
async def list_job_callbacks(
    job_id: IdPath, uow: UnitOfWorkDep, caller: Annotated[Caller, Callers]
) -> Page[CallbackPublic]:
    """Every call to the customer, oldest first."""
    return await uow.run(
        lambda session: Page[CallbackPublic](
            items=[public.callback(row) for row in service.callbacks_of(session=session, job_id=job_id, caller=caller)]
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

    return await uow.run(
        lambda session: public.reviewed(
            service.review(
                session=session, job_id=job_id, passed=body.passed, reason=body.reason, caller=caller, now=now
            )
        )
    )


@router.get("/closeout", response_model=CloseoutPublic, responses=problem_responses(404))
async def get_job_closeout(
    job_id: IdPath,
    uow: UnitOfWorkDep,
    caller: Annotated[Caller, Depends(allow(Role.dispatcher, Role.supervisor, Role.technician))],
) -> CloseoutPublic:
    """What the job still needs before it closes (it closes by itself once nothing is missing)."""

    return await uow.run(
        lambda session: public.closeout(service.get_closing(session=session, job_id=job_id, caller=caller))
    )


@callbacks_router.get("/due", response_model=Page[CallbackDuePublic], dependencies=[Callers])
async def list_callbacks_due(uow: UnitOfWorkDep, now: NowDep, limit: LimitQuery = 50) -> Page[CallbackDuePublic]:
    """The dispatcher's call list: completed jobs whose customer has not been reached since the
    visit, never called or due again (`retry_after` passed), longest waiting first. The first
    `limit`; call those, and the list moves on."""
    return await uow.run(
        lambda session: Page[CallbackDuePublic](
            items=[public.due(row) for row in service.callbacks_due(session=session, now=now, limit=limit)]
        )
    )
