from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AfterValidator
from sqlalchemy.orm import Session

from dispatch.auth.dependencies import CallerDep, allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import DatabaseDep, IdPath, IdQuery, NowDep, SettingsDep, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.events.schemas import JobEventPublic
from dispatch.jobs import flows, service
from dispatch.jobs.lifecycle import JobStatus
from dispatch.jobs.schemas import BranchFilter, JobCreate, JobLocation, JobOrder, JobPublic, JobSearch, StatusChange
from dispatch.paging import CursorQuery, LimitQuery, Page
from dispatch.schemas import Category
from dispatch.sla.states import SlaState


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL cannot compare text with NUL in it
        raise ValueError("must not contain NUL characters")
    return value


router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=problem_responses(400, 401, 403, 413, 422))


@router.post("", status_code=201, response_model=JobPublic, responses=problem_responses(409))
async def create_job(
    body: JobCreate,
    response: Response,
    database: DatabaseDep,
    settings: SettingsDep,
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.outlet, Role.dispatcher))],
) -> JobPublic:
    """Take a repair request. Without coordinates the address is geocoded; if that fails the job
    is still accepted with `needs_location: true` for a dispatcher to place."""
    placed = await flows.place_customer(database=database, settings=settings, job_in=body)
    job = await uow.run(
        lambda session: service.to_public(
            flows.receive(session=session, job_in=body, placed=placed, caller=caller, now=now, settings=settings), now
        )
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get("", response_model=Page[JobPublic])
async def list_jobs(
    uow: UnitOfWorkDep,
    caller: CallerDep,
    now: NowDep,
    status: Annotated[list[JobStatus] | None, Query(max_length=10)] = None,
    technician_id: IdQuery = None,
    outlet_id: IdQuery = None,
    sla_state: SlaState | None = None,
    needs_location: bool | None = None,
    category: Annotated[Category | None, Query()] = None,
    branch: Annotated[
        BranchFilter | None, Query(description="Jobs assigned to technicians of this home branch")
    ] = None,
    q: Annotated[
        JobSearch | None,
        Query(description="Search: the outlet's order number (`external_ref`), or part of the customer's phone number"),
    ] = None,
    external_ref: Annotated[
        Annotated[str, AfterValidator(_no_nul)] | None,
        Query(min_length=1, max_length=100, description="The outlet's own order number"),
    ] = None,
    order: JobOrder = "due_at",
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[JobPublic]:
    """Jobs this key may see, most urgent (earliest due) first unless `order=-due_at`."""

    def work(session: Session) -> Page[JobPublic]:
        return service.list_jobs(
            session=session,
            caller=caller,
            now=now,
            limit=limit,
            cursor=cursor,
            order=order,
            statuses=status,
            technician_id=technician_id,
            outlet_id=outlet_id,
            sla_state=sla_state,
            needs_location=needs_location,
            category=category,
            branch=branch,
            search=q,
            external_ref=external_ref,
        ).page(JobPublic, lambda job: service.to_public(job, now))

    return await uow.run(work)


@router.get("/{job_id}", response_model=JobPublic, responses=problem_responses(404))
async def get_job(job_id: IdPath, uow: UnitOfWorkDep, caller: CallerDep, now: NowDep) -> JobPublic:
    return await uow.run(
        lambda session: service.to_public(service.get(session=session, job_id=job_id, caller=caller), now)
    )


@router.get("/{job_id}/events", response_model=Page[JobEventPublic], responses=problem_responses(404))
async def list_job_events(
    job_id: IdPath, uow: UnitOfWorkDep, caller: CallerDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[JobEventPublic]:
    """The job's timeline, oldest first."""
    return await uow.run(
        lambda session: service.timeline(
            session=session, job_id=job_id, caller=caller, limit=limit, cursor=cursor
        ).page(JobEventPublic)
    )


@router.post("/{job_id}/status", response_model=JobPublic, responses=problem_responses(404, 409))
async def change_job_status(
    job_id: IdPath,
    body: StatusChange,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.technician, Role.dispatcher, Role.supervisor))],
) -> JobPublic:
    """The technician's taps: `en_route`, `on_site`, `completed`, `unable`, with the device time.
    Dispatchers may also `cancel`. Illegal moves are 409."""
    return await uow.run(
        lambda session: service.to_public(
            flows.change_status(session=session, job_id=job_id, change=body, caller=caller, now=now, settings=settings),
            now,
        )
    )


@router.post("/{job_id}/location", response_model=JobPublic, responses=problem_responses(404, 409))
async def set_job_location(
    job_id: IdPath,
    body: JobLocation,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.dispatcher))],
) -> JobPublic:
    """Place a job whose address could not be geocoded; auto-dispatch follows when it is on."""

    return await uow.run(
        lambda session: service.to_public(
            flows.set_location(
                session=session, job_id=job_id, lat=body.lat, lon=body.lon, caller=caller, now=now, settings=settings
            ),
            now,
        )
    )
