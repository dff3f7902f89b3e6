from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from dispatch.auth import service
from dispatch.auth.dependencies import CallerDep, allow
from dispatch.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeyRotate,
    ApiKeyRotated,
)
from dispatch.auth.service import Caller
from dispatch.config import Settings
from dispatch.deps import (
    IdPath,
    NowDep,
    SettingsDep,
    UnitOfWorkDep,
)
from dispatch.errors import problem_responses
from dispatch.paging import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], responses=problem_responses(400, 401, 403, 413, 422))
AdminOnly = Depends(allow())
AdminCaller = Annotated[Caller, AdminOnly]


@router.post("", status_code=201, response_model=ApiKeyCreated, responses=problem_responses(404))
async def create_api_key(body: ApiKeyCreate, uow: UnitOfWorkDep, now: NowDep, caller: AdminCaller) -> ApiKeyCreated:
    def work(session: Session) -> ApiKeyCreated:
        key, secret = service.issue(
            session=session,
            role=body.role,
            now=now,
            name=body.name,
            technician_id=body.technician_id,
            outlet_id=body.outlet_id,
            created_by_key_id=caller.key_id,
        )
        return ApiKeyCreated.model_validate({**ApiKeyPublic.model_validate(key).model_dump(), "key": secret})

    return await uow.run(work)


@router.get("", response_model=Page[ApiKeyPublic], dependencies=[AdminOnly])
async def list_api_keys(uow: UnitOfWorkDep, limit: LimitQuery = 50, cursor: CursorQuery = None) -> Page[ApiKeyPublic]:
    return await uow.run(
        lambda session: service.list_keys(session=session, limit=limit, cursor=cursor).page(ApiKeyPublic)
    )


@router.delete(
    "/{key_id}", response_model=ApiKeyPublic, dependencies=[AdminOnly], responses=problem_responses(404, 409)
)
async def revoke_api_key(key_id: IdPath, request: Request, uow: UnitOfWorkDep, now: NowDep) -> ApiKeyPublic:
    """Revoke a key, and the successors it minted by rotating itself (a stolen key that rotated
    itself leaves no working successor). They stop working at once on this server and within
    `DISPATCH_AUTH_CACHE_SECONDS` on the others. The last admin key that does not expire cannot
    be revoked (409 `last-admin-key`)."""
    revoked = await uow.run(
        lambda session: [
            ApiKeyPublic.model_validate(k) for k in service.revoke(session=session, key_id=key_id, now=now)
        ]
    )
    for key in revoked:
        request.app.state.recent_keys.forget(key.id)
    return revoked[0]


def _rotate(
    key_id: int, by_key_id: int, body: ApiKeyRotate | None, settings: Settings, now: datetime
) -> Callable[[Session], ApiKeyRotated]:
    hours = body.grace_hours if body is not None and body.grace_hours is not None else settings.key_rotation_grace_hours
    grace = timedelta(hours=hours)

    def work(session: Session) -> ApiKeyRotated:
        new, secret, old = service.rotate(session=session, key_id=key_id, now=now, grace=grace, by_key_id=by_key_id)
        return ApiKeyRotated.model_validate(
            {
                **ApiKeyPublic.model_validate(new).model_dump(),
                "key": secret,
                "previous": ApiKeyPublic.model_validate(old),
            }
        )

    return work


@router.post("/current/rotate", status_code=201, response_model=ApiKeyRotated, responses=problem_responses(409))
async def rotate_own_api_key(
    caller: CallerDep,
    request: Request,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    body: ApiKeyRotate | None = None,
) -> ApiKeyRotated:
    """Replace the key making this call (an outlet's integration rotating its own secret).
    The old key keeps working for the grace period, so deployments can switch over."""
    rotated = await uow.run(_rotate(caller.key_id, caller.key_id, body, settings, now))
    # This process forgets the old key at once: with no grace it stops now, not when the cache says.
    request.app.state.recent_keys.forget(caller.key_id)
    return rotated


@router.post(
    "/{key_id}/rotate",
    status_code=201,
    response_model=ApiKeyRotated,
    responses=problem_responses(404, 409),
)
async def rotate_api_key(
    key_id: IdPath,
    caller: AdminCaller,
    request: Request,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    body: ApiKeyRotate | None = None,
) -> ApiKeyRotated:
    """Issue a successor to a key (same role and binding). Both work until the grace period ends."""
    rotated = await uow.run(_rotate(key_id, caller.key_id, body, settings, now))
    request.app.state.recent_keys.forget(key_id)
    return rotated
