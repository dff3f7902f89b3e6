"""API keys under a hostile review (issue 13): revoking a key takes what it minted with it, a
rotation without grace ends the old key at once, operators cannot lock themselves out, and a
deactivated technician's phone stops reading customers' jobs."""

from __future__ import annotations

import pytest
from support.api import job_body

from dispatch.auth.models import Role


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _works(api, secret: str) -> bool:
    return api.client.get("/v1/jobs", headers=_bearer(secret)).status_code == 200


def _key_id(api, secret: str) -> int:
    return next(k["id"] for k in api.get("/v1/api-keys", who="admin").json()["items"] if secret.startswith(k["prefix"]))


def _revoke(api, key_id: int):
    return api.client.delete(f"/v1/api-keys/{key_id}", headers=api.headers("admin"))


def test_revoking_a_stolen_key_revokes_the_successors_it_minted_by_rotating_itself(api):
    stolen = api.post("/v1/outlets", {"code": "shop-1", "name": "Shop"}, who="admin").json()["api_key"]
    # The thief rotates the stolen key, then rotates its successor: a chain of keys it minted.
    first = api.post("/v1/api-keys/current/rotate", {}, headers=_bearer(stolen)).json()
    second = api.post("/v1/api-keys/current/rotate", {}, headers=_bearer(first["key"])).json()
    assert all(_works(api, s) for s in (stolen, first["key"], second["key"]))  # in grace, and cached
    r = _revoke(api, first["previous"]["id"])
    assert r.status_code == 200, r.text
    # At once in this process, the cache included: nothing the stolen key minted still works.
    assert [_works(api, s) for s in (stolen, first["key"], second["key"])] == [False, False, False]
    listed = {k["id"]: k for k in api.get("/v1/api-keys", who="admin").json()["items"]}
    assert all(listed[i]["revoked_at"] is not None for i in (first["previous"]["id"], first["id"], second["id"]))
    assert (first["created_by_key_id"], second["created_by_key_id"]) == (first["previous"]["id"], first["id"])


def test_a_successor_an_admin_issued_survives_revoking_the_old_key(api):
    """Rotating a key for an outlet and then revoking the old one ends its grace early: the admin's
    successor is the admin's act, not something the old key minted."""
    old = api.post("/v1/outlets", {"code": "shop-2", "name": "Shop"}, who="admin").json()["api_key"]
    old_id = _key_id(api, old)
    new = api.post(f"/v1/api-keys/{old_id}/rotate", {"grace_hours": 24}, who="admin").json()
    assert _revoke(api, old_id).status_code == 200
    assert not _works(api, old) and _works(api, new["key"])
    assert new["created_by_key_id"] == _key_id(api, api.keys["admin"])


@pytest.mark.parametrize("by", ["itself", "admin"])
def test_a_rotation_without_grace_stops_the_old_key_at_once_in_this_process(api, by):
    old = api.post("/v1/outlets", {"code": f"shop-{by}", "name": "Shop"}, who="admin").json()["api_key"]
    assert _works(api, old)  # now in this process's authentication cache
    if by == "itself":
        r = api.post("/v1/api-keys/current/rotate", {"grace_hours": 0}, headers=_bearer(old))
    else:
        r = api.post(f"/v1/api-keys/{_key_id(api, old)}/rotate", {"grace_hours": 0}, who="admin")
    assert r.status_code == 201, r.text
    assert not _works(api, old) and _works(api, r.json()["key"])


def test_the_last_admin_key_cannot_be_revoked_not_even_by_itself(api):
    admin_id = _key_id(api, api.keys["admin"])
    r = _revoke(api, admin_id)
    assert r.status_code == 409 and r.json()["code"] == "last-admin-key"
    assert _works(api, api.keys["admin"])
    # With a second admin key the first can go; then the second is the last one.
    second = api.post("/v1/api-keys", {"role": "admin", "name": "deputy"}, who="admin").json()
    assert _revoke(api, admin_id).status_code == 200
    r = api.client.delete(f"/v1/api-keys/{second['id']}", headers=_bearer(second["key"]))
    assert r.status_code == 409 and r.json()["code"] == "last-admin-key"
    # An admin key in its rotation grace will stop by itself: it does not count as one left.
    rotated = api.post("/v1/api-keys/current/rotate", {"grace_hours": 1}, headers=_bearer(second["key"])).json()
    r = api.client.delete(f"/v1/api-keys/{rotated['id']}", headers=_bearer(rotated["key"]))
    assert r.status_code == 409 and r.json()["code"] == "last-admin-key"


def test_a_configured_admin_key_that_expired_or_was_revoked_stops_the_start_with_what_to_do(settings, clock, database):
    from fastapi.testclient import TestClient

    from dispatch.app import create_app
    from dispatch.errors import DispatchError

    secret = "bootstrap-admin-key-0123456789"
    settings.admin_key = secret
    with TestClient(create_app(settings, clock=clock, database=database)) as client:
        r = client.post("/v1/api-keys/current/rotate", json={"grace_hours": 1}, headers=_bearer(secret))
        assert r.status_code == 201, r.text
        successor = r.json()
    clock.advance(hours=2)
    with pytest.raises(DispatchError) as refused:
        with TestClient(create_app(settings, clock=clock, database=database)):
            pass  # before: it started, then answered 401 to its own operator
    assert (
        refused.value.code == "admin-key-refused"
        and "expired" in refused.value.detail
        and f"successor is key {successor['id']}" in refused.value.detail
    )
    assert "dispatch create-key --role admin" in refused.value.detail
    settings.admin_key = successor["key"]
    with TestClient(create_app(settings, clock=clock, database=database)) as client:
        deputy = client.post("/v1/api-keys", json={"role": "admin"}, headers=_bearer(successor["key"])).json()
        assert client.delete(f"/v1/api-keys/{successor['id']}", headers=_bearer(deputy["key"])).status_code == 200
    with pytest.raises(DispatchError, match="revoked at"):
        with TestClient(create_app(settings, clock=clock, database=database)):
            pass


def test_dispatch_serve_refuses_a_revoked_admin_key_before_it_starts(settings, database, clock, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from dispatch.auth import service as auth
    from dispatch.cli import app as cli

    secret = "bootstrap-admin-key-0123456789"
    with database.transaction() as session:
        key, _ = auth.issue(session=session, role=Role.admin, now=clock.now(), secret=secret)
        auth.issue(session=session, role=Role.admin, now=clock.now())
    with database.transaction() as session:
        auth.revoke(session=session, key_id=key.id, now=clock.now())
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(a))
    monkeypatch.setenv("DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("DISPATCH_ADMIN_KEY", secret)
    result = CliRunner().invoke(cli, ["serve", "--no-migrate"])
    assert result.exit_code == 2 and not started, result.output
    assert "revoked at" in result.output and "DISPATCH_ADMIN_KEY" in result.output


@pytest.fixture
def no_key_cache(settings):
    """Keys are looked up on every request, as another server process that had not cached them would."""
    settings.auth_cache_seconds = 0


def test_a_deactivated_technicians_key_no_longer_reads_their_jobs(no_key_cache, api):
    tech = api.technician()
    job = api.post("/v1/jobs", job_body()).json()
    assert api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "near"}).status_code == 200
    phone = api.as_technician(tech["id"])
    assert api.get(f"/v1/jobs/{job['id']}", headers=phone).status_code == 200
    assert api.patch(f"/v1/technicians/{tech['id']}", {"active": False}).status_code == 200
    for path in (f"/v1/jobs/{job['id']}", "/v1/jobs"):
        r = api.get(path, headers=phone)
        assert r.status_code == 403 and r.json()["code"] == "technician-inactive", r.text
    assert api.patch(f"/v1/technicians/{tech['id']}", {"active": True}).status_code == 200
    assert api.get(f"/v1/jobs/{job['id']}", headers=phone).status_code == 200
