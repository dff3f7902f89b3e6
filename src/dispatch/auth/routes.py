from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from dispatch.auth import service
from dispatch.auth.dependencies import allow
from dispatch.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from dispatch.deps import CursorQuery, IdPath, LimitQuery, NowDep, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.schemas import Page, decode_id_cursor, id_page

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], responses=problem_responses(400, 401, 403, 413, 422))
AdminOnly = Depends(allow())


@router.post("", status_code=201, response_model=ApiKeyCreated, dependencies=[AdminOnly],
             responses=problem_responses(404))
async def create_api_key(body: ApiKeyCreate, uow: UnitOfWorkDep, now: NowDep) -> ApiKeyCreated:
    def work(session):  # type: ignore[no-untyped-def]
        key, secret = service.issue(
            session=session, role=body.role, now=now, name=body.name,
            technician_id=body.technician_id, outlet_id=body.outlet_id,
        )
        return ApiKeyCreated.model_validate({**ApiKeyPublic.model_validate(key).model_dump(), "key": secret})

    return await uow.run(work)


@router.get("", response_model=Page[ApiKeyPublic], dependencies=[AdminOnly])
async def list_api_keys(uow: UnitOfWorkDep, limit: LimitQuery = 50, cursor: CursorQuery = None) -> Page[ApiKeyPublic]:
    after_id = decode_id_cursor(cursor)
    return await uow.run(
        lambda session: id_page(ApiKeyPublic, service.list_keys(session=session, limit=limit + 1, after_id=after_id), limit)
    )


@router.delete("/{key_id}", response_model=ApiKeyPublic, dependencies=[AdminOnly], responses=problem_responses(404))
async def revoke_api_key(key_id: IdPath, request: Request, uow: UnitOfWorkDep, now: NowDep) -> ApiKeyPublic:
    """Revoke a key. It stops working at once on this server and within
    `DISPATCH_AUTH_CACHE_SECONDS` on the others."""
    key = await uow.run(lambda session: ApiKeyPublic.model_validate(service.revoke(session=session, key_id=key_id, now=now)))
    request.app.state.recent_keys.forget(key_id)
    return key
