from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from dispatch.app import create_app
from dispatch.database.core import Database


def test_liveness_needs_no_key(api):
    r = api.client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readiness_checks_the_database(api):
    r = api.client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["database"] in {"sqlite", "postgresql"}


def test_readiness_fails_when_the_database_is_gone(settings, clock):
    unreachable = Database(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    with TestClient(create_app(settings, clock=clock, database=unreachable)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable"
        assert client.get("/healthz").status_code == 200
