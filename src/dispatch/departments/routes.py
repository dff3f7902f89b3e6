from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.departments import service
from dispatch.departments.schemas import (
    CauseList,
    CausePublic,
    CausePut,
    Code,
    DepartmentList,
    DepartmentPublic,
    DepartmentPut,
)
from dispatch.deps import NowDep, UnitOfWorkDep
from dispatch.errors import problem_responses

router = APIRouter(tags=["departments"], responses=problem_responses(400, 401, 403, 413, 422))
# Everyone inside the service centre reads them; outlets are outside it.
Insiders = Depends(allow(Role.dispatcher, Role.supervisor, Role.customer_service, Role.warehouse, Role.technician))
CodePath = Annotated[Code, Path()]


@router.get("/v1/departments", response_model=DepartmentList, dependencies=[Insiders])
async def list_departments(uow: UnitOfWorkDep) -> DepartmentList:
    """Departments, the stages of a job each owns and their internal targets."""
    return await uow.run(
        lambda session: DepartmentList(items=[DepartmentPublic.of(v) for v in service.list_departments(session)])
    )


@router.get(
    "/v1/departments/{code}", response_model=DepartmentPublic, dependencies=[Insiders], responses=problem_responses(404)
)
async def get_department(code: CodePath, uow: UnitOfWorkDep) -> DepartmentPublic:
    return await uow.run(lambda session: DepartmentPublic.of(service.get(session, code)))


@router.put("/v1/departments/{code}", response_model=DepartmentPublic, responses=problem_responses(409))
async def put_department(
    code: CodePath,
    body: DepartmentPut,
    uow: UnitOfWorkDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow())],
) -> DepartmentPublic:
    """Create or change a department (admin): its name, reply target, and the stages it owns."""
    return await uow.run(
        lambda session: DepartmentPublic.of(
            service.put(
                session=session,
                code=code,
                name=body.name,
                reply_target_minutes=body.reply_target_minutes,
                active=body.active,
                stages=body.stages,
                actor=caller.actor,
                now=now,
            )
        )
    )


@router.get("/v1/causes", response_model=CauseList, dependencies=[Insiders])
async def list_causes(uow: UnitOfWorkDep, include_inactive: bool = False) -> CauseList:
    """The cause catalogue: what a breach or a return visit can be charged to."""
    return await uow.run(
        lambda session: CauseList(
            items=[
                CausePublic.model_validate(c) for c in service.list_causes(session, include_inactive=include_inactive)
            ]
        )
    )


@router.put("/v1/causes/{code}", response_model=CausePublic)
async def put_cause(
    code: CodePath, body: CausePut, uow: UnitOfWorkDep, now: NowDep, caller: Annotated[Caller, Depends(allow())]
) -> CausePublic:
    """Add or change a cause code (admin). Codes are never deleted: retire one with `active: false`."""
    return await uow.run(
        lambda session: CausePublic.model_validate(
            service.put_cause(
                session=session,
                code=code,
                label=body.label,
                department=body.department,
                active=body.active,
                actor=caller.actor,
                now=now,
            )
        )
    )
