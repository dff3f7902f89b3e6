from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from dispatch.auth.dependencies import CallerDep, allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import IdPath, NowDep, SettingsDep, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.jobs import service as jobs
from dispatch.paging import Page
from dispatch.visits import service
from dispatch.visits.models import VisitReason
from dispatch.visits.schemas import ReturnVisitCreate, ReturnVisitPublic, VisitPublic

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["visits"], responses=problem_responses(400, 401, 403, 413, 422))


@router.get("/visits", response_model=Page[VisitPublic], responses=problem_responses(404))
async def list_job_visits(job_id: IdPath, uow: UnitOfWorkDep, caller: CallerDep) -> Page[VisitPublic]:
    """Every trip to the customer, first first: technician, device times and outcome. A job has
    few visits, so this is one page."""
    return await uow.run(
        lambda session: Page[VisitPublic](
            items=[VisitPublic.of(v) for v in service.list_visits(session=session, job_id=job_id, caller=caller)]
        )
    )


@router.post("/return-visits", status_code=201, response_model=ReturnVisitPublic, responses=problem_responses(404, 409))
async def create_return_visit(
    job_id: IdPath,
    body: ReturnVisitCreate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.dispatcher, Role.supervisor))],
) -> ReturnVisitPublic:
    """Reopen a completed or closed job with a new visit; the last technician goes back if they
    can. The job's `sla.return_visits` counts these."""

    def work(session: Session) -> ReturnVisitPublic:
        job, visit = service.plan_return_visit(
            session=session,
            job_id=job_id,
            reason=VisitReason(body.reason),
            note=body.note,
            caller=caller,
            now=now,
            settings=settings,
        )
        return ReturnVisitPublic(job=jobs.to_public(job, now), visit=VisitPublic.of(visit))

    return await uow.run(work)
