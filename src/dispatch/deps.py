"""Request-scoped dependencies shared by every domain's routes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dispatch.clock import Clock
from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.errors import Conflict
from dispatch.schemas import MAX_ID

_READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_database(request: Request) -> Database:
    return request.app.state.database


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_clock(request: Request) -> Clock:
    return request.app.state.clock


def get_now(request: Request) -> datetime:
    """One "now" per request, so every rule in the request sees the same instant."""
    return request.app.state.clock.now()


def get_session(request: Request) -> Iterator[Session]:
    """The request's one transaction: committed before the response is sent."""
    database: Database = request.app.state.database
    write = request.method not in _READ_METHODS
    with database.session(write=write) as session:
        try:
            yield session
            session.commit()
        except DBAPIError as exc:
            session.rollback()
            if _is_retryable(exc):
                raise Conflict(
                    "the request raced with another one; retry it", code="concurrent-update"
                ) from exc
            raise
        except BaseException:
            session.rollback()
            raise


def _is_retryable(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in {"40001", "40P01"}


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
NowDep = Annotated[datetime, Depends(get_now)]
DatabaseDep = Annotated[Database, Depends(get_database)]

# Ids in paths and filters: 32-bit, positive.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]

# Paging parameters shared by every collection: bounded pages, opaque cursors.
LimitQuery = Annotated[int, Query(ge=1, le=200, description="Page size")]
CursorQuery = Annotated[str | None, Query(max_length=200, description="From the previous page's next_cursor")]
