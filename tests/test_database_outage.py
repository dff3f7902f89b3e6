"""A database that cannot be reached is a 503 ``database-unavailable`` with Retry-After,
never a 500: a client should wait and retry, and nothing it sent was wrong (docs/decisions.md,
"Slow and hostile clients"). Whether the failure shows in a route, in the key check, or in the
Idempotency-Key middleware."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from support.api import job_body

from dispatch.app import create_app
from dispatch.database.core import Database


def _assert_database_unavailable(r) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "database-unavailable"
    assert int(r.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://nobody@127.0.0.1:1/none", "sqlite:////nonexistent-folder/dispatch.sqlite3"],
    ids=["postgresql-port-closed", "sqlite-file-unopenable"],
)
def test_an_unreachable_database_answers_503_database_unavailable(settings, clock, url):
    unreachable = Database(create_engine(url))
    key = {"Authorization": "Bearer dsp_some-key-that-needs-a-lookup"}
    with TestClient(create_app(settings, clock=clock, database=unreachable)) as client:
        _assert_database_unavailable(client.get("/v1/jobs", headers=key))
        _assert_database_unavailable(
            client.post("/v1/jobs", json=job_body(), headers={**key, "Idempotency-Key": "order-1"})
        )
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_an_exhausted_connection_pool_answers_503(api, settings, clock):
    """Every connection is taken and none comes back within the pool's timeout."""
    tiny = Database(create_engine(settings.resolved_database_url, pool_size=1, max_overflow=0, pool_timeout=0.2))
    with tiny.engine.connect(), TestClient(create_app(settings, clock=clock, database=tiny)) as client:
        _assert_database_unavailable(client.get("/v1/jobs", headers=api.headers("dispatcher")))
    tiny.dispose()


def test_every_operation_documents_503(api):
    spec = api.client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        if path.startswith("/v1"):
            for method, op in operations.items():
                assert "503" in op["responses"], (method, path)
                assert "Retry-After" in op["responses"]["503"]["headers"], (method, path)


def test_a_mistake_in_sql_is_not_mistaken_for_an_outage():
    """SQLite reports a missing table as an OperationalError too: that is a bug (500), not a
    reason to tell clients to come back later."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from dispatch.errors import is_database_outage

    engine = create_engine("sqlite://")
    with pytest.raises(OperationalError) as mistake, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_database_outage(mistake.value)
    with pytest.raises(OperationalError) as unopenable:
        create_engine("sqlite:////nonexistent-folder/x.sqlite3").connect()
    assert is_database_outage(unopenable.value)
