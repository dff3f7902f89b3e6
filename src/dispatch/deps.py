"""Request-scoped dependencies shared by every domain's routes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Header, Path, Query, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.errors import Conflict
from dispatch.schemas import MAX_ID

_READ_METHODS = {"GET", "HEAD", "OPTIONS"}
T = TypeVar("T")


# Dependencies that do no I/O are `async def`: FastAPI runs sync ones on a worker thread,
# and each such hop costs more than the work itself.


async def get_database(request: Request) -> Database:
    return request.app.state.database


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_now(request: Request) -> datetime:
    """One "now" per request, so every rule in the request sees the same instant."""
    return request.app.state.clock.now()


class UnitOfWork:
    """The request's one transaction, run on one worker thread from first statement to commit.

    Routes are ``async``: they parse, authorise and shape the response in the event loop and
    hand the data work to ``run``, which opens a session, calls the service, commits and closes
    in a single hop to a worker thread. On SQLite, write transactions also wait their turn here,
    in the event loop, so no thread is held while another writer holds the file.
    """

    def __init__(self, database: Database, *, write: bool, writer: anyio.Lock | None) -> None:
        self.database = database
        self.write = write
        self.writer = writer

    async def run(self, work: Callable[[Session], T]) -> T:
        if self.writer is not None:
            async with self.writer:
                return await anyio.to_thread.run_sync(self._run, work)
        return await anyio.to_thread.run_sync(self._run, work)

    def _run(self, work: Callable[[Session], T]) -> T:
        with self.database.session(write=self.write) as session:
            try:
                result = work(session)
                session.commit()
                return result
            except DBAPIError as exc:
                session.rollback()
                if _is_retryable(exc):
                    raise Conflict("the request raced with another one; retry it", code="concurrent-update") from exc
                raise
            except BaseException:
                session.rollback()
                raise


async def get_unit_of_work(request: Request) -> UnitOfWork:
    database: Database = request.app.state.database
    write = request.method not in _READ_METHODS
    writer = None
    if write and database.dialect == "sqlite":
        state = request.app.state
        if getattr(state, "sqlite_writer", None) is None:  # created inside the server's event loop
            state.sqlite_writer = anyio.Lock()
        writer = state.sqlite_writer
    return UnitOfWork(database, write=write, writer=writer)


def _is_retryable(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in {"40001", "40P01"}


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
NowDep = Annotated[datetime, Depends(get_now)]
DatabaseDep = Annotated[Database, Depends(get_database)]

# Ids in paths and filters: 32-bit, positive.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1000,
        description="The ETag you read: the change is refused with 412 if someone changed the resource since",
    ),
]
