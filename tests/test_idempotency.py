"""Idempotency-Key on every write: a retry gets the first answer, never a second job.

RELIABILITY.md, "Idempotency": the first response (status and body) is replayed for the same
key; the same key with a different body is refused (422, code ``idempotency-key-reused``); a
retry while the first is still running is 409 (``idempotency-key-in-use``); keys are scoped
to the caller and purged after ``DISPATCH_IDEMPOTENCY_KEY_HOURS``.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from conftest import job_body
from sqlalchemy import func, select
from test_races import run_together

from dispatch.idempotency import service as idempotency
from dispatch.idempotency.models import IdempotencyKey
from dispatch.jobs.models import Job


def _jobs(api) -> int:
    with api.database.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(Job))


def _keys(api) -> int:
    with api.database.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(IdempotencyKey))


def _with_key(api, key: str, who: str = "dispatcher") -> dict[str, str]:
    return {**api.headers(who), "Idempotency-Key": key}


def test_a_retried_intake_gets_the_first_answer_and_makes_one_job(api):
    first = api.post("/v1/jobs", job_body(external_ref="A-1"), headers=_with_key(api, "order-A-1"))
    assert first.status_code == 201, first.text
    api.clock.advance(minutes=5)
    again = api.post("/v1/jobs", job_body(external_ref="A-1"), headers=_with_key(api, "order-A-1"))
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _jobs(api) == 1


def test_the_same_key_with_a_different_body_is_refused(api):
    assert api.post("/v1/jobs", job_body(fault="Leaks"), headers=_with_key(api, "k1")).status_code == 201
    r = api.post("/v1/jobs", job_body(fault="Does not start"), headers=_with_key(api, "k1"))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "idempotency-key-reused"
    r = api.post("/v1/technicians", {"name": "T", "skills": ["tv"], "lat": 52.0, "lon": 21.0, "capacity": 1},
                 headers=_with_key(api, "k1"))
    assert r.status_code == 422 and r.json()["code"] == "idempotency-key-reused"  # another path is another request
    assert _jobs(api) == 1


def test_keys_belong_to_their_caller(api):
    a = api.post("/v1/outlets", {"code": "shop-a", "name": "A"}, who="admin").json()
    b = api.post("/v1/outlets", {"code": "shop-b", "name": "B"}, who="admin").json()
    ra = api.post("/v1/jobs", job_body(), headers={**api.as_outlet(a["id"]), "Idempotency-Key": "same"})
    rb = api.post("/v1/jobs", job_body(), headers={**api.as_outlet(b["id"]), "Idempotency-Key": "same"})
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]
    assert rb.json()["outlet_id"] == b["id"] and "idempotent-replayed" not in rb.headers


def test_twenty_identical_requests_at_once_make_exactly_one_job(api):
    headers = _with_key(api, "burst-1")
    responses = run_together([lambda: api.post("/v1/jobs", job_body(), headers=headers) for _ in range(20)])
    assert all(not isinstance(r, BaseException) for r in responses), responses
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    assert statuses[201] >= 1
    assert {r.json()["id"] for r in responses if r.status_code == 201} == {responses[[r.status_code for r in responses].index(201)].json()["id"]}
    assert {r.json()["code"] for r in responses if r.status_code == 409} <= {"idempotency-key-in-use"}
    assert all(r.headers.get("retry-after") == "1" for r in responses if r.status_code == 409)
    assert _jobs(api) == 1
    # Once the first has answered, every retry is a replay.
    assert api.post("/v1/jobs", job_body(), headers=headers).headers["idempotent-replayed"] == "true"


def test_a_phone_resending_a_status_change_gets_the_first_answer_not_a_conflict(api):
    tech = api.technician()
    job = api.job()
    assert api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "closer"}).status_code == 200
    phone = {**api.as_technician(tech["id"]), "Idempotency-Key": "tap-1"}
    body = {"status": "en_route", "at": "2026-03-10T09:00:00Z"}
    first = api.post(f"/v1/jobs/{job['id']}/status", body, headers=phone)
    assert first.status_code == 200, first.text
    again = api.post(f"/v1/jobs/{job['id']}/status", body, headers=phone)
    assert again.status_code == 200 and again.json() == first.json()
    without_key = api.post(f"/v1/jobs/{job['id']}/status", body, headers=api.as_technician(tech["id"]))
    assert without_key.status_code == 409  # the same tap without a key is a second, illegal move
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    assert [e["data"].get("to") for e in events if e["type"] == "status_changed"] == ["en_route"]


def test_a_refused_request_releases_its_key_so_the_retry_runs_again(api):
    tech = api.technician()
    job = api.job()
    phone = {**api.as_technician(tech["id"]), "Idempotency-Key": "early-tap"}
    body = {"status": "en_route", "at": "2026-03-10T09:00:00Z"}
    assert api.post(f"/v1/jobs/{job['id']}/status", body, headers=phone).status_code == 404  # not theirs yet
    assert api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "closer"}).status_code == 200
    # 404 is a final answer for that request: kept and replayed.
    assert api.post(f"/v1/jobs/{job['id']}/status", body, headers=phone).status_code == 404
    # A 409 is not kept: a conflict may clear, so the key is free again.
    api.post(f"/v1/jobs/{job['id']}/status", {"status": "en_route", "at": "2026-03-10T09:00:00Z"},
             headers=api.as_technician(tech["id"]))
    conflict = {**api.as_technician(tech["id"]), "Idempotency-Key": "second-tap"}
    assert api.post(f"/v1/jobs/{job['id']}/status", {"status": "en_route", "at": "2026-03-10T09:00:00Z"},
                    headers=conflict).status_code == 409
    r = api.post(f"/v1/jobs/{job['id']}/status", {"status": "on_site", "at": "2026-03-10T09:00:00Z"}, headers=conflict)
    assert r.status_code == 200, r.text  # the released key is free for the next request
    with api.database.transaction(write=False) as session:
        kept = {k.key: k.status for k in session.scalars(select(IdempotencyKey))}
    assert kept["early-tap"] == 404


def test_keys_expire_and_are_purged_after_the_configured_time(api):
    headers = _with_key(api, "old-key")
    first = api.post("/v1/jobs", job_body(), headers=headers).json()
    assert _keys(api) == 1
    api.clock.advance(hours=23)
    assert api.post("/v1/jobs", job_body(), headers=headers).json()["id"] == first["id"]
    api.clock.advance(hours=2)
    assert idempotency.purge(database=api.database, now=api.clock.now()) == 1
    assert _keys(api) == 0
    second = api.post("/v1/jobs", job_body(), headers=headers)
    assert second.status_code == 201 and second.json()["id"] != first["id"]


def test_an_expired_key_that_was_not_purged_yet_runs_afresh(api):
    headers = _with_key(api, "stale")
    first = api.post("/v1/jobs", job_body(), headers=headers).json()
    api.clock.advance(timedelta(hours=24, seconds=1))
    assert api.post("/v1/jobs", job_body(fault="other"), headers=headers).json()["id"] != first["id"]


def test_a_key_that_is_not_printable_ascii_or_too_long_is_refused(api):
    r = api.post("/v1/jobs", job_body(), headers=_with_key(api, "x" * 256))
    assert r.status_code == 422 and r.json()["code"] == "invalid-idempotency-key"
    assert _jobs(api) == 0


def test_without_a_valid_api_key_the_header_changes_nothing(api):
    r = api.client.post("/v1/jobs", json=job_body(), headers={"Idempotency-Key": "k"})
    assert r.status_code == 401
    assert _keys(api) == 0


def test_every_write_operation_documents_the_header(api):
    spec = api.client.get("/openapi.json").json()
    writes = [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()
              if m in {"post", "put", "patch", "delete"}]
    assert writes
    for method, path, op in writes:
        names = [p["name"] for p in op.get("parameters", [])]
        assert "Idempotency-Key" in names, (method, path)
        assert {"409", "422"} <= set(op["responses"]), (method, path)
