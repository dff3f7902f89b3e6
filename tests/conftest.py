"""Test harness (fixtures only; plain helpers are in ``tests/support/``): every test gets a
database built by the real migrations.

SQLite by default (a copy of a migrated template file per test). Set
``DISPATCH_TEST_DATABASE_URL`` to a PostgreSQL URL to run the same suite there: a fresh
database is created for the run, migrated once, and truncated after each test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text
from support.api import Api, staff_keys
from support.database import PG_URL
from support.moments import T0

from dispatch.app import create_app
from dispatch.clock import FrozenClock
from dispatch.config import Settings
from dispatch.database import migrate
from dispatch.database.core import Database, make_engine
from dispatch.departments import service as departments
from dispatch.models import metadata
from dispatch.sla import policies


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {'PostgreSQL ' + make_url(PG_URL).render_as_string(hide_password=True) if PG_URL else 'SQLite'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PG_URL:
        return
    skip = pytest.mark.skip(reason="PostgreSQL only: set DISPATCH_TEST_DATABASE_URL (make test does)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for this test run (a template file on SQLite)."""
    if PG_URL:
        base = make_url(PG_URL).set(drivername="postgresql+psycopg")
        name = f"dispatch_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(Settings(database_url=url))
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.sqlite3"
        url = f"sqlite:///{path}"
        migrate.upgrade(Settings(database_url=url))
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    if PG_URL:
        url = database_url
    else:
        template = Path(make_url(database_url).database)  # type: ignore[arg-type]
        copy = tmp_path / "dispatch.sqlite3"
        shutil.copyfile(template, copy)
        url = f"sqlite:///{copy}"
    return Settings(
        environment="test",
        database_url=url,
        data_dir=tmp_path,
        sqlite_synchronous="NORMAL",  # tests need no power-loss durability
        auto_dispatch=False,
        # Tests that need them turn these on: a rate limit on the shared keys (or on the 401s the
        # authorization tests provoke by the hundred) would make other tests flaky, and webhook
        # deliveries are driven by hand with the frozen clock.
        rate_limit_per_second=0,
        auth_failures_per_minute=0,
        webhook_worker=False,
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = Database(make_engine(settings))
    yield db
    if PG_URL:
        tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        with db.transaction() as session:  # the migrations' seeds went with the truncation
            policies.restore_defaults(session, T0)
            departments.restore_defaults(session, T0)
    db.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def api(settings: Settings, clock: FrozenClock, database: Database) -> Iterator[Api]:
    """The app on the test's database and clock, with a key for each staff role (tests/support/api.py)."""
    app = create_app(settings, clock=clock, database=database)
    keys = staff_keys(database, clock.now())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, database=database, clock=clock, keys=keys)
