"""Who is calling, and may they: the ``Authorization: Bearer`` key and role checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dispatch.auth import service
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import DatabaseDep
from dispatch.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def get_caller(
    database: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`", code="missing-api-key")
    # Its own short read transaction: the request's write transaction (and, on SQLite, the
    # write lock) should begin only when the request first touches the data it changes.
    with database.transaction(write=False) as session:
        return service.authenticate(session=session, secret=credentials.credentials)


CallerDep = Annotated[Caller, Depends(get_caller)]


def allow(*roles: Role):
    """A dependency that lets the given roles (and admin) through, and refuses the rest."""
    allowed = {Role.admin, *roles}

    def _check(caller: CallerDep) -> Caller:
        if caller.role not in allowed:
            raise Forbidden(
                f"a {caller.role.value} key may not do this", code="role-not-allowed"
            )
        return caller

    _check.allowed_roles = allowed  # type: ignore[attr-defined]  # read by the role-matrix test
    return _check

