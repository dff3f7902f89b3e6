from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from dispatch.assignment import service
from dispatch.assignment.schemas import DispatchResult
from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import IdPath, NowDep, SettingsDep, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.jobs import service as jobs
from dispatch.jobs.schemas import AssignRequest, JobPublic

router = APIRouter(prefix="/v1/jobs", tags=["dispatch"], responses=problem_responses(400, 401, 403, 404, 409, 413, 422))
Dispatcher = Annotated[Caller, Depends(allow(Role.dispatcher, Role.supervisor))]


@router.post("/{job_id}/dispatch", response_model=DispatchResult)
async def dispatch_job(
    job_id: IdPath, uow: UnitOfWorkDep, settings: SettingsDep, now: NowDep, caller: Dispatcher
) -> DispatchResult:
    """Assign the nearest available technician: has the skill, is on duty and on shift, is under
    capacity, is active. 409 `no-technician-available` says why when nobody qualifies."""

    def work(session: Session) -> DispatchResult:
        outcome, candidates = service.dispatch_explained(
            session=session, job_id=job_id, caller=caller, now=now, settings=settings
        )
        return DispatchResult(
            job=jobs.to_public(outcome.job, now),
            technician_id=outcome.choice.technician_id,
            distance_km=outcome.choice.distance_km,
            searched_radius_km=outcome.choice.selection.radius_km,
            candidates=candidates,
        )

    return await uow.run(work)


@router.post("/{job_id}/assign", response_model=JobPublic)
async def assign_job(
    job_id: IdPath, body: AssignRequest, uow: UnitOfWorkDep, now: NowDep, caller: Dispatcher
) -> JobPublic:
    """A dispatcher's own choice of technician, with a reason. Skill and shift may be overridden
    (the timeline says so); capacity and blocks may not."""
    return await uow.run(
        lambda session: jobs.to_public(
            service.assign(
                session=session,
                job_id=job_id,
                technician_id=body.technician_id,
                reason=body.reason,
                caller=caller,
                now=now,
            ),
            now,
        )
    )
