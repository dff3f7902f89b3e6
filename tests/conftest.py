"""Test harness: every test gets a database built by the real migrations.

SQLite by default (a copy of a migrated template file per test). Set
``DISPATCH_TEST_DATABASE_URL`` to a PostgreSQL URL to run the same suite there: a fresh
database is created for the run, migrated once, and truncated after each test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from dispatch.app import create_app
from dispatch.auth import service as auth
from dispatch.auth.models import Role
from dispatch.clock import FrozenClock
from dispatch.config import Settings
from dispatch.database import migrate
from dispatch.database.core import Database, make_engine
from dispatch.departments import service as departments
from dispatch.models import metadata
from dispatch.sla import policies

PG_URL = os.environ.get("DISPATCH_TEST_DATABASE_URL")
# A Tuesday, 10:00 in Warsaw: inside the usual shift hours.
T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


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


@dataclass
class Api:
    """A test client with a key per role, so tests read like the people who act."""

    client: TestClient
    database: Database
    clock: FrozenClock
    keys: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def key_for(self, role: Role, *, technician_id: int | None = None, outlet_id: int | None = None) -> str:
        name = f"{role.value}:{technician_id or outlet_id or ''}"
        if name not in self.keys:
            with self.database.transaction() as session:
                _, secret = auth.issue(
                    session=session,
                    role=role,
                    now=self.clock.now(),
                    technician_id=technician_id,
                    outlet_id=outlet_id,
                )
            self.keys[name] = secret
        return name

    def as_technician(self, technician_id: int) -> dict[str, str]:
        return self.headers(self.key_for(Role.technician, technician_id=technician_id))

    def as_outlet(self, outlet_id: int) -> dict[str, str]:
        return self.headers(self.key_for(Role.outlet, outlet_id=outlet_id))

    def get(self, path: str, who: str = "dispatcher", **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers=kw.pop("headers", None) or self.headers(who), **kw)

    def post(self, path: str, json: Any = None, who: str = "dispatcher", **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.post(path, json=json, headers=kw.pop("headers", None) or self.headers(who), **kw)

    def patch(self, path: str, json: Any = None, who: str = "dispatcher", **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.patch(path, json=json, headers=kw.pop("headers", None) or self.headers(who), **kw)

    # Workflow helpers -------------------------------------------------------------------

    def technician(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "Tech", "skills": ["washing machine"], "lat": 52.2297, "lon": 21.0122, "capacity": 1}
        body.update(fields)
        r = self.post("/v1/technicians", body)
        assert r.status_code == 201, r.text
        return r.json()

    def job(self, who: str = "dispatcher", headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        body = job_body(**fields)
        r = self.post("/v1/jobs", body, who=who, headers=headers)
        assert r.status_code == 201, r.text
        return r.json()


def job_body(**fields: Any) -> dict[str, Any]:
    customer = {
        "name": "Maria Dąbrowska",
        "phone": "+48 22 555 01 00",
        "address": "Marszałkowska 104, Warszawa",
        "lat": 52.2319,
        "lon": 21.0067,
    }
    customer.update(fields.pop("customer", {}))
    product = {"category": "washing machine", "model": "WM-100", "serial": "SN1"}
    product.update(fields.pop("product", {}))
    body: dict[str, Any] = {"customer": customer, "product": product, "fault": "Drum does not spin"}
    body.update(fields)
    return body


def make_app(settings: Settings, clock: FrozenClock, database: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, clock=clock, database=database)


@pytest.fixture
def api(settings: Settings, clock: FrozenClock, database: Database) -> Iterator[Api]:
    app = make_app(settings, clock, database)
    keys: dict[str, str] = {}
    with database.transaction() as session:
        for role in (Role.admin, Role.dispatcher, Role.supervisor, Role.warehouse, Role.customer_service):
            _, keys[role.value] = auth.issue(session=session, role=role, now=clock.now())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, database=database, clock=clock, keys=keys)
