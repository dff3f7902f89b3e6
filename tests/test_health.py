def test_liveness_needs_no_key(api):
    r = api.client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readiness_checks_the_database(api):
    r = api.client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["database"] in {"sqlite", "postgresql"}


def test_readiness_fails_when_the_database_is_gone(api):
    api.database.engine.dispose()
    from sqlalchemy import create_engine

    api.database.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    r = api.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
