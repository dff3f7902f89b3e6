from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from dispatch import versions
from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import (
    IdPath,
    IfMatchHeader,
    NowDep,
    SettingsDep,
    UnitOfWorkDep,
)
from dispatch.errors import NotFound, problem_responses
from dispatch.paging import CursorQuery, LimitQuery, Page
from dispatch.schemas import Category
from dispatch.technicians import public, service
from dispatch.technicians.schemas import (
    LocationReport,
    TechnicianCreate,
    TechnicianPublic,
    TechnicianUpdate,
)

router = APIRouter(prefix="/v1/technicians", tags=["technicians"], responses=problem_responses(400, 401, 403, 413, 422))
Dispatchers = Depends(allow(Role.dispatcher))
Readers = allow(Role.dispatcher, Role.supervisor, Role.technician)


def _with_etag(answer: tuple[TechnicianPublic, str], response: Response) -> TechnicianPublic:
    technician, version = answer
    response.headers["ETag"] = versions.etag(version)  # for If-Match on the next edit
    return technician


def _own_or_any(caller: Caller, technician_id: int) -> None:
    # A technician's key sees only its own technician; others are simply not there.
    if caller.role is Role.technician and caller.technician_id != technician_id:
        raise NotFound(f"technician {technician_id} not found", code="technician-not-found")


@router.post(
    "",
    status_code=201,
    response_model=TechnicianPublic,
    dependencies=[Dispatchers],
    responses=versions.etag_header(201),
)
async def create_technician(
    body: TechnicianCreate, uow: UnitOfWorkDep, now: NowDep, response: Response
) -> TechnicianPublic:
    answer = await uow.run(
        lambda session: public.one(session, service.create(session=session, technician_in=body, now=now), now)
    )
    return _with_etag(answer, response)


@router.get("", response_model=Page[TechnicianPublic], dependencies=[Depends(allow(Role.dispatcher, Role.supervisor))])
async def list_technicians(
    uow: UnitOfWorkDep,
    now: NowDep,
    skill: Annotated[Category | None, Query()] = None,
    on_duty: bool | None = None,
    active: bool | None = None,
    home_branch: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]+$")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[TechnicianPublic]:
    return await uow.run(
        lambda session: public.page(
            session,
            service.list_technicians(
                session=session,
                limit=limit,
                cursor=cursor,
                skill=skill,
                on_duty=on_duty,
                active=active,
                home_branch=home_branch,
            ),
            now,
        )
    )


@router.get(
    "/{technician_id}", response_model=TechnicianPublic, responses={**problem_responses(404), **versions.etag_header()}
)
async def get_technician(
    technician_id: IdPath,
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(Readers)],
    response: Response,
) -> TechnicianPublic:
    _own_or_any(caller, technician_id)
    answer = await uow.run(
        lambda session: public.one(session, service.get(session=session, technician_id=technician_id), now)
    )
    return _with_etag(answer, response)


@router.patch(
    "/{technician_id}",
    response_model=TechnicianPublic,
    dependencies=[Dispatchers],
    responses={**problem_responses(404, 412), **versions.etag_header()},
)
async def update_technician(
    technician_id: IdPath,
    body: TechnicianUpdate,
    uow: UnitOfWorkDep,
    now: NowDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> TechnicianPublic:
    """Change a technician's details. Send the `ETag` you read as `If-Match` so that two
    dispatchers editing at once cannot silently undo each other's change (412 instead)."""
    answer = await uow.run(
        lambda session: public.one(
            session,
            service.update_technician(
                session=session,
                technician_id=technician_id,
                technician_in=body,
                now=now,
                if_match=versions.parse_if_match(if_match),
            ),
            now,
        )
    )
    return _with_etag(answer, response)


@router.post("/{technician_id}/location", response_model=TechnicianPublic, responses=problem_responses(404))
async def report_technician_location(
    technician_id: IdPath,
    body: LocationReport,
    uow: UnitOfWorkDep,
    now: NowDep,
    settings: SettingsDep,
    caller: Annotated[Caller, Depends(allow(Role.technician, Role.dispatcher))],
) -> TechnicianPublic:
    _own_or_any(caller, technician_id)
    answer = await uow.run(
        lambda session: public.one(
            session,
            service.report_location(
                session=session,
                technician_id=technician_id,
                report=body,
                now=now,
                skew_seconds=settings.clock_skew_seconds,
            ),
            now,
        )
    )
    return answer[0]
