"""Outlets and their keys: created with a key shown once, rotated with a grace period, revoked;
an outlet finds its jobs by its own order number and sees nobody else's."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from support.api import bearer, job_body
from support.workflow import add_outlet

from dispatch.auth.service import hash_key


@pytest.fixture
def no_key_cache(settings):
    """Keys are looked up on every request, so expiry shows at once (the cache is 5 s of real time)."""
    settings.auth_cache_seconds = 0


def test_an_admin_creates_an_outlet_and_its_key_is_shown_once_and_stored_hashed(api):
    r = api.post("/v1/outlets", {"code": "shop-042", "name": "Shop 42"}, who="admin")
    assert r.status_code == 201, r.text
    outlet = r.json()
    secret = outlet["api_key"]
    assert secret.startswith("dsp_")
    job = api.post("/v1/jobs", job_body(external_ref="ORD-1"), headers=bearer(secret))
    assert job.status_code == 201 and job.json()["outlet_id"] == outlet["id"]
    assert "api_key" not in api.get(f"/v1/outlets/{outlet['id']}").json()
    with api.database.engine.connect() as conn:
        hashes = (
            conn.execute(text("SELECT key_hash FROM api_key WHERE outlet_id = :o"), {"o": outlet["id"]}).scalars().all()
        )
    assert hashes == [hash_key(secret)]


def test_a_rotated_key_keeps_working_through_the_grace_period_then_stops(no_key_cache, api):
    outlet = add_outlet(api, "shop-1", "Shop")
    old = outlet["api_key"]
    keys = api.get("/v1/api-keys", who="admin").json()["items"]
    old_id = next(k["id"] for k in keys if k["outlet_id"] == outlet["id"])
    r = api.post(f"/v1/api-keys/{old_id}/rotate", {"grace_hours": 2}, who="admin")
    assert r.status_code == 201, r.text
    rotated = r.json()
    new = rotated["key"]
    assert rotated["outlet_id"] == outlet["id"] and rotated["role"] == "outlet"
    assert rotated["previous"]["replaced_by_id"] == rotated["id"]
    assert rotated["previous"]["expires_at"] == "2026-03-10T11:00:00Z"
    for secret in (old, new):
        assert api.client.get("/v1/jobs", headers=bearer(secret)).status_code == 200
    api.clock.advance(hours=2)
    assert api.client.get("/v1/jobs", headers=bearer(old)).status_code == 401
    assert api.client.get("/v1/jobs", headers=bearer(new)).status_code == 200
    again = api.post(f"/v1/api-keys/{old_id}/rotate", {}, who="admin")
    assert again.status_code == 409 and again.json()["code"] == "api-key-inactive"


def test_a_key_is_rotated_once_and_a_revoked_key_cannot_be(api):
    created = api.post("/v1/api-keys", {"role": "dispatcher"}, who="admin").json()
    assert api.post(f"/v1/api-keys/{created['id']}/rotate", who="admin").status_code == 201
    r = api.post(f"/v1/api-keys/{created['id']}/rotate", who="admin")
    assert r.status_code == 409 and r.json()["code"] == "api-key-already-rotated"
    other = api.post("/v1/api-keys", {"role": "dispatcher"}, who="admin").json()
    api.client.delete(f"/v1/api-keys/{other['id']}", headers=api.headers("admin"))
    assert api.post(f"/v1/api-keys/{other['id']}/rotate", who="admin").json()["code"] == "api-key-inactive"
    assert api.post("/v1/api-keys/999/rotate", who="admin").status_code == 404


def test_an_outlet_rotates_its_own_key_and_its_idempotency_keys_still_replay(no_key_cache, api):
    outlet = add_outlet(api, "shop-2", "Shop")
    old = outlet["api_key"]
    first = api.post("/v1/jobs", job_body(), headers={**bearer(old), "Idempotency-Key": "o-1"})
    r = api.post("/v1/api-keys/current/rotate", {"grace_hours": 0}, headers=bearer(old))
    assert r.status_code == 201, r.text
    new = r.json()["key"]
    assert api.client.get("/v1/jobs", headers=bearer(old)).status_code == 401  # no grace asked for
    replay = api.post("/v1/jobs", job_body(), headers={**bearer(new), "Idempotency-Key": "o-1"})
    assert replay.status_code == 201 and replay.json()["id"] == first.json()["id"]
    assert replay.headers["idempotent-replayed"] == "true"


def test_an_outlet_finds_its_job_by_its_own_order_number_and_only_its_own(api):
    a = add_outlet(api, "a", "A")
    b = add_outlet(api, "b", "B")
    mine = api.post("/v1/jobs", job_body(external_ref="ORD-7"), headers=bearer(a["api_key"])).json()
    theirs = api.post("/v1/jobs", job_body(external_ref="ORD-7"), headers=bearer(b["api_key"])).json()
    found = api.get("/v1/jobs", params={"external_ref": "ORD-7"}, headers=bearer(a["api_key"])).json()["items"]
    assert [j["id"] for j in found] == [mine["id"]]
    assert api.get(f"/v1/jobs/{theirs['id']}", headers=bearer(a["api_key"])).status_code == 404
    assert api.get(f"/v1/jobs/{theirs['id']}/events", headers=bearer(a["api_key"])).status_code == 404
    all_mine = api.get("/v1/jobs", headers=bearer(a["api_key"])).json()["items"]
    assert [j["id"] for j in all_mine] == [mine["id"]]
    dup = api.post("/v1/jobs", job_body(external_ref="ORD-7"), headers=bearer(a["api_key"]))
    assert dup.status_code == 409 and dup.json()["code"] == "duplicate-external-ref"
    assert dup.json()["job_id"] == mine["id"]
    staff = api.get("/v1/jobs", params={"external_ref": "ORD-7", "outlet_id": b["id"]}).json()["items"]
    assert [j["id"] for j in staff] == [theirs["id"]]


def test_an_order_number_with_a_nul_character_is_a_422_not_a_database_error(api):
    r = api.get("/v1/jobs", params={"external_ref": "A\x00"})
    assert r.status_code == 422 and r.json()["code"] == "validation-failed"
