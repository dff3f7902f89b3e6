"""Who is calling, and may they: the ``Authorization: Bearer`` key and role checks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dispatch.auth import service
from dispatch.auth.credentials import bearer_secret
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.database.core import Database
from dispatch.deps import DatabaseDep
from dispatch.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


async def get_caller(
    request: Request,
    database: DatabaseDep,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],  # names the scheme in the spec
) -> Caller:
    # Read as the rate limiter and the middleware read it, not as HTTPBearer does.
    secret = bearer_secret(request.headers.get("authorization"))
    if secret is None:
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`", code="missing-api-key")
    keys: service.RecentKeys = request.app.state.recent_keys
    key_hash = service.hash_key(secret)
    caller = keys.get(key_hash)
    if caller is None:
        caller = await anyio.to_thread.run_sync(_look_up, database, key_hash, request.app.state.clock.now())
        keys.put(key_hash, caller)
    request.state.caller = caller  # for the rate limiter: this key is genuine
    return caller


def _look_up(database: Database, key_hash: str, now: datetime) -> Caller:
    # Its own short read transaction: the request's write transaction (and, on SQLite, the
    # writer's turn) should begin only when the request first touches the data it changes.
    with database.transaction(write=False) as session:
        return service.authenticate(session=session, key_hash=key_hash, now=now)


CallerDep = Annotated[Caller, Depends(get_caller)]


def allow(*roles: Role):
    """A dependency that lets the given roles (and admin) through, and refuses the rest."""
    allowed = {Role.admin, *roles}

    async def _check(caller: CallerDep) -> Caller:
        if caller.role not in allowed:
            raise Forbidden(f"a {caller.role.value} key may not do this", code="role-not-allowed")
        return caller

    return _check
