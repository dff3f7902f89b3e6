from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.deps import IdPath, NowDep, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.outlets import service
from dispatch.outlets.schemas import OutletCreate, OutletCreated, OutletPublic
from dispatch.paging import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/v1/outlets", tags=["outlets"], responses=problem_responses(400, 401, 403, 413, 422))
Staff = Depends(allow(Role.dispatcher, Role.supervisor))


@router.post(
    "", status_code=201, response_model=OutletCreated, dependencies=[Depends(allow())], responses=problem_responses(409)
)
async def create_outlet(body: OutletCreate, uow: UnitOfWorkDep, now: NowDep) -> OutletCreated:
    def work(session: Session) -> OutletCreated:
        outlet, secret = service.sign_up(session=session, code=body.code, name=body.name, now=now)
        return OutletCreated.model_validate({**OutletPublic.model_validate(outlet).model_dump(), "api_key": secret})

    return await uow.run(work)


@router.get("", response_model=Page[OutletPublic], dependencies=[Staff])
async def list_outlets(uow: UnitOfWorkDep, limit: LimitQuery = 50, cursor: CursorQuery = None) -> Page[OutletPublic]:
    return await uow.run(
        lambda session: service.list_outlets(session=session, limit=limit, cursor=cursor).page(OutletPublic)
    )


@router.get("/{outlet_id}", response_model=OutletPublic, dependencies=[Staff], responses=problem_responses(404))
async def get_outlet(outlet_id: IdPath, uow: UnitOfWorkDep) -> OutletPublic:
    return await uow.run(lambda session: OutletPublic.model_validate(service.get(session=session, outlet_id=outlet_id)))
