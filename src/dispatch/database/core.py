"""Engines, sessions and transactions.

One transaction per request: the request's session dependency commits, services only
flush. On SQLite, writers are serialised inside the process (a lock taken at BEGIN
IMMEDIATE and released after COMMIT) so concurrent requests queue in the app instead of
spinning in SQLite's busy handler; readers use plain deferred transactions under WAL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session

from dispatch.config import Settings

WRITE_OPTION = "dispatch_write"


def _install_sqlite_hooks(engine: Engine, synchronous: str) -> None:
    write_lock = threading.Lock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not pysqlite) decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            write_lock.acquire()
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                write_lock.release()
                raise
            conn.info["holds_write_lock"] = True
        else:
            conn.exec_driver_sql("BEGIN")

    def _finish(conn: Any, statement: str) -> None:
        # End the transaction here, then let go of the lock: the driver's own commit or
        # rollback that follows is a no-op once SQLite is back in autocommit mode.
        holds = conn.info.pop("holds_write_lock", False)
        try:
            dbapi = conn.connection.dbapi_connection
            if not dbapi.in_transaction:
                return
            dbapi.execute(statement)
        finally:
            if holds:
                write_lock.release()

    @event.listens_for(engine, "commit")
    def _on_commit(conn: Any) -> None:
        _finish(conn, "COMMIT")

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Any) -> None:
        _finish(conn, "ROLLBACK")


def ensure_sqlite_folder(url: str) -> None:
    """The embedded default lives in a data folder that may not exist yet."""
    database = make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        ensure_sqlite_folder(url)
        in_memory = make_url(url).database in (None, "", ":memory:")
        pool_args = {} if in_memory else _pool_size(settings)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, **pool_args)
        _install_sqlite_hooks(engine, settings.sqlite_synchronous)
        return engine
    return create_engine(url, pool_pre_ping=settings.db_pre_ping, pool_recycle=1800, **_pool_size(settings))


def _pool_size(settings: Settings) -> dict[str, int]:
    # A request holds at most one connection at a time (the key check's is returned first);
    # a few more cover the service's own background work.
    return {"pool_size": settings.max_concurrent_requests + 4, "max_overflow": 8}


class Database:
    """The engine plus the two kinds of session the service uses."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.write_engine = engine.execution_options(**{WRITE_OPTION: True})
        # Reads on PostgreSQL run in autocommit: under Read Committed every statement takes its
        # own snapshot anyway, so a read transaction adds only the BEGIN and COMMIT round trips.
        self.read_engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else engine
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self, *, write: bool) -> Session:
        return Session(bind=self.write_engine if write else self.read_engine, expire_on_commit=False)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A unit of work: commits when the block ends normally, rolls back otherwise."""
        with self.session(write=write) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
