from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from dispatch.auth.dependencies import CallerDep, allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import CursorQuery, DatabaseDep, IdPath, IdQuery, LimitQuery, NowDep, SessionDep, SettingsDep
from dispatch.errors import problem_responses
from dispatch.events import service as events
from dispatch.events.schemas import JobEventPublic
from dispatch.jobs import flows, service
from dispatch.jobs.lifecycle import JobStatus
from dispatch.jobs.schemas import JobCreate, JobLocation, JobOrder, JobPublic, StatusChange
from dispatch.schemas import Category, Page, decode_id_cursor, id_page
from dispatch.sla.clock import SlaState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=problem_responses(400, 401, 403, 413, 422))


@router.post("", status_code=201, response_model=JobPublic, responses=problem_responses(409))
def create_job(
    body: JobCreate,
    response: Response,
    database: DatabaseDep,
    settings: SettingsDep,
    session: SessionDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.outlet, Role.dispatcher))],
) -> JobPublic:
    """Take a repair request. Without coordinates the address is geocoded; if that fails the job
    is still accepted with `needs_location: true` for a dispatcher to place."""
    placed = flows.place_customer(database=database, settings=settings, job_in=body)
    job = flows.receive(session=session, job_in=body, placed=placed, caller=caller, now=now, settings=settings)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return service.to_public(job, now)


@router.get("", response_model=Page[JobPublic])
def list_jobs(
    session: SessionDep,
    caller: CallerDep,
    now: NowDep,
    status: Annotated[list[JobStatus] | None, Query(max_length=10)] = None,
    technician_id: IdQuery = None,
    outlet_id: IdQuery = None,
    sla_state: SlaState | None = None,
    needs_location: bool | None = None,
    category: Annotated[Category | None, Query()] = None,
    order: JobOrder = "due_at",
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[JobPublic]:
    """Jobs this key may see, most urgent (earliest due) first unless `order=-due_at`."""
    rows, next_cursor = service.list_jobs(
        session=session, caller=caller, now=now, limit=limit, cursor=cursor, order=order,
        statuses=status, technician_id=technician_id, outlet_id=outlet_id, sla_state=sla_state,
        needs_location=needs_location, category=category,
    )
    return Page[JobPublic](items=[service.to_public(j, now) for j in rows], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobPublic, responses=problem_responses(404))
def get_job(job_id: IdPath, session: SessionDep, caller: CallerDep, now: NowDep) -> JobPublic:
    return service.to_public(service.get(session=session, job_id=job_id, caller=caller), now)


@router.get("/{job_id}/events", response_model=Page[JobEventPublic], responses=problem_responses(404))
def list_job_events(
    job_id: IdPath, session: SessionDep, caller: CallerDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[JobEventPublic]:
    """The job's timeline, oldest first."""
    service.get(session=session, job_id=job_id, caller=caller)
    rows = events.timeline(session=session, job_id=job_id, limit=limit + 1, after_id=decode_id_cursor(cursor))
    return id_page(JobEventPublic, rows, limit)


@router.post("/{job_id}/status", response_model=JobPublic, responses=problem_responses(404, 409))
def change_job_status(
    job_id: IdPath,
    body: StatusChange,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.technician, Role.dispatcher, Role.supervisor))],
) -> JobPublic:
    """The technician's taps: `en_route`, `on_site`, `completed`, `unable`, with the device time.
    Dispatchers may also `cancel`. Illegal moves are 409."""
    job = service.change_status(session=session, job_id=job_id, change=body, caller=caller, now=now, settings=settings)
    return service.to_public(job, now)


@router.post("/{job_id}/location", response_model=JobPublic, responses=problem_responses(404, 409))
def set_job_location(
    job_id: IdPath,
    body: JobLocation,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.dispatcher))],
) -> JobPublic:
    """Place a job whose address could not be geocoded; auto-dispatch follows when it is on."""
    job = service.set_location(session=session, job_id=job_id, lat=body.lat, lon=body.lon, caller=caller, now=now)
    if settings.auto_dispatch and job.status is JobStatus.new:
        flows.auto_dispatch(session=session, job=job, now=now, settings=settings)
    return service.to_public(job, now)
