"""Request-scoped dependencies shared by every domain's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Path, Query, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dispatch.clock import Clock
from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.errors import Conflict
from dispatch.schemas import MAX_ID

_READ_METHODS = {"GET", "HEAD", "OPTIONS"}


# Dependencies that do no I/O are `async def`: FastAPI runs sync ones on a worker thread,
# and each such hop costs more than the work itself.


async def get_database(request: Request) -> Database:
    return request.app.state.database


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_clock(request: Request) -> Clock:
    return request.app.state.clock


async def get_now(request: Request) -> datetime:
    """One "now" per request, so every rule in the request sees the same instant."""
    return request.app.state.clock.now()


async def sqlite_writer_turn(request: Request) -> AsyncIterator[None]:
    """On SQLite one write transaction runs at a time: writers wait for their turn here, in
    the event loop, instead of holding a worker thread while they wait for the file lock.
    Released only after the session below has committed."""
    database: Database = request.app.state.database
    if database.dialect != "sqlite" or request.method in _READ_METHODS:
        yield
        return
    state = request.app.state
    if getattr(state, "sqlite_writer", None) is None:
        state.sqlite_writer = anyio.Lock()
    async with state.sqlite_writer:
        yield


async def get_session(
    request: Request, _turn: Annotated[None, Depends(sqlite_writer_turn, scope="function")]
) -> AsyncIterator[Session]:
    """The request's one transaction: committed before the response is sent.

    Opening a session does no I/O (it connects on first use, inside the route's worker
    thread); committing does, so it runs on a worker thread of its own.
    """
    database: Database = request.app.state.database
    session = database.session(write=request.method not in _READ_METHODS)
    try:
        yield session
    except BaseException:
        await anyio.to_thread.run_sync(_end, session, False)
        raise
    try:
        await anyio.to_thread.run_sync(_end, session, True)
    except DBAPIError as exc:
        if _is_retryable(exc):
            raise Conflict("the request raced with another one; retry it", code="concurrent-update") from exc
        raise


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


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
