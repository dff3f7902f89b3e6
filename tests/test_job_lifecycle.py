"""A technician taps through a job on the phone; illegal moves are refused."""

from datetime import timedelta

import pytest
from conftest import T0, job_body

from dispatch.jobs.lifecycle import TRANSITIONS, JobStatus


@pytest.fixture
def assigned(api):
    tech = api.technician(capacity=2)
    job = api.job()
    api.post(f"/v1/jobs/{job['id']}/dispatch")
    return tech, job, api.as_technician(tech["id"])


def _status(api, job_id, status, headers, at=None, **extra):
    body = {"status": status, "at": (at or api.clock.now()).isoformat(), **extra}
    return api.post(f"/v1/jobs/{job_id}/status", body, headers=headers)


def test_a_technician_goes_en_route_arrives_and_completes(api, assigned):
    tech, job, phone = assigned
    assert _status(api, job["id"], "en_route", phone).json()["status"] == "en_route"
    api.clock.advance(minutes=25)
    on_site = _status(api, job["id"], "on_site", phone, lat=52.2319, lon=21.0067)
    assert on_site.json()["status"] == "on_site"
    api.clock.advance(hours=1)
    done = _status(api, job["id"], "completed", phone, note="replaced the drum bearing").json()
    assert done["status"] == "completed"
    assert done["completed_at"] == (T0 + timedelta(minutes=85)).isoformat().replace("+00:00", "Z")
    assert done["sla"]["state"] == "met"
    assert api.get(f"/v1/technicians/{tech['id']}").json()["open_jobs"] == 0
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    assert [e["data"].get("to") for e in events if e["type"] == "status_changed"] == [
        "en_route",
        "on_site",
        "completed",
    ]
    assert [e for e in events if e["type"] == "status_changed"][-1]["data"]["note"] == "replaced the drum bearing"


def test_a_job_completed_after_its_deadline_missed_it(api, assigned):
    _, job, phone = assigned
    api.clock.advance(hours=25)
    _status(api, job["id"], "on_site", phone)
    assert _status(api, job["id"], "completed", phone).json()["sla"]["state"] == "missed"


@pytest.mark.parametrize("target", ["completed", "assigned", "new"])
def test_illegal_moves_are_409_and_change_nothing(api, assigned, target):
    _, job, phone = assigned
    r = _status(api, job["id"], target, phone)
    if target in ("assigned", "new"):
        assert r.status_code == 422  # not something anyone reports: set by intake and dispatch
        assert ["body", "status"] in [e["loc"] for e in r.json()["errors"]]
    else:
        assert r.status_code == 409
        body = r.json()
        assert body["code"] == "illegal-transition"
        assert body["current_status"] == "assigned"
        assert "completed" not in body["allowed"]
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "assigned"


def test_a_completed_job_cannot_move_again(api, assigned):
    _, job, phone = assigned
    for s in ("on_site", "completed"):
        _status(api, job["id"], s, phone)
    r = _status(api, job["id"], "en_route", phone)
    assert r.status_code == 409 and r.json()["current_status"] == "completed"


def test_unable_frees_the_technician_and_the_job_waits_for_another(api, assigned):
    tech, job, phone = assigned
    _status(api, job["id"], "en_route", phone)
    r = _status(api, job["id"], "unable", phone, note="van broke down")
    assert r.status_code == 200
    assert r.json()["status"] == "unable" and r.json()["technician_id"] is None
    assert api.get(f"/v1/technicians/{tech['id']}").json()["open_jobs"] == 0
    # Off the technician's list now.
    assert api.get(f"/v1/jobs/{job['id']}", headers=phone).status_code == 404
    other = api.technician(name="Backup", lat=52.30, lon=21.0)
    r = api.post(f"/v1/jobs/{job['id']}/dispatch")
    assert r.status_code == 200, r.text
    assert r.json()["technician_id"] in (tech["id"], other["id"])


def test_a_dispatcher_cancels_a_job_and_capacity_comes_back(api, assigned):
    tech, job, phone = assigned
    body = {"status": "cancelled", "at": T0.isoformat(), "note": "customer fixed it"}
    r = api.post(f"/v1/jobs/{job['id']}/status", body)
    assert r.status_code == 200
    assert r.json()["sla"]["state"] == "cancelled"
    assert api.get(f"/v1/technicians/{tech['id']}").json()["open_jobs"] == 0
    # The technician's phone still shows it, as cancelled, so nobody drives to a customer who said no.
    mine = api.get("/v1/jobs", headers=phone, params={"status": "cancelled"}).json()["items"]
    assert [(j["id"], j["status"], j["technician_id"]) for j in mine] == [(job["id"], "cancelled", tech["id"])]


def test_a_technician_cannot_cancel(api, assigned):
    _, job, phone = assigned
    r = _status(api, job["id"], "cancelled", phone)
    assert r.status_code == 422 and r.json()["code"] == "status-not-settable"


def test_a_device_time_from_the_future_is_refused(api, assigned):
    _, job, phone = assigned
    r = _status(api, job["id"], "en_route", phone, at=T0 + timedelta(hours=2))
    assert r.status_code == 422 and r.json()["code"] == "timestamp-in-future"


def test_a_status_update_needs_its_device_time(api, assigned):
    _, job, phone = assigned
    r = api.post(f"/v1/jobs/{job['id']}/status", {"status": "en_route"}, headers=phone)
    assert r.status_code == 422
    assert ["body", "at"] in [e["loc"] for e in r.json()["errors"]]


def test_the_transition_table_has_no_way_out_of_a_finished_job():
    assert TRANSITIONS[JobStatus.completed] == frozenset()
    assert TRANSITIONS[JobStatus.cancelled] == frozenset()
    for status, targets in TRANSITIONS.items():
        assert status not in targets  # no transition to itself: a replayed tap is refused, not repeated


def test_a_late_tap_from_an_offline_phone_is_taken_with_its_own_time(api, assigned):
    tech, job, phone = assigned
    set_off = api.clock.now() + timedelta(minutes=5)
    arrived = set_off + timedelta(minutes=20)
    api.clock.advance(hours=2)  # the phone had no signal until now
    assert _status(api, job["id"], "en_route", phone, at=set_off).status_code == 200
    r = _status(api, job["id"], "on_site", phone, at=arrived)
    assert r.status_code == 200, r.text
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    assert [e["occurred_at"] for e in events if e["type"] == "status_changed"] == [
        moment.isoformat().replace("+00:00", "Z") for moment in (set_off, arrived)
    ]


def test_a_device_time_before_what_already_happened_is_refused(api, assigned):
    tech, job, phone = assigned
    api.clock.advance(hours=30)  # past the deadline
    on_site = api.clock.now()
    assert _status(api, job["id"], "on_site", phone, at=on_site).status_code == 200
    # "Completed yesterday", before it was even on site: it would turn a missed deadline into a met one.
    r = _status(api, job["id"], "completed", phone, at=on_site - timedelta(days=1))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "timestamp-out-of-order" and r.json()["errors"][0]["loc"] == ["body", "at"]
    # Before the job was even reported or given to them, likewise; within the clock skew is fine.
    other = api.job()
    api.post(f"/v1/jobs/{other['id']}/assign", {"technician_id": tech["id"], "reason": "x"})
    assert _status(api, other["id"], "en_route", phone, at=api.clock.now() - timedelta(hours=3)).status_code == 422
    assert _status(api, other["id"], "en_route", phone, at=api.clock.now() - timedelta(minutes=4)).status_code == 200
    assert _status(api, job["id"], "completed", phone).status_code == 200
    assert api.get(f"/v1/jobs/{job['id']}").json()["sla"]["state"] == "missed"


def test_a_request_reported_more_than_a_month_ago_is_refused(api):
    r = api.post("/v1/jobs", job_body(reported_at=(api.clock.now() - timedelta(days=31)).isoformat()))
    assert r.status_code == 422 and r.json()["code"] == "timestamp-too-old", r.text
    assert (
        api.post("/v1/jobs", job_body(reported_at=(api.clock.now() - timedelta(days=29)).isoformat())).status_code
        == 201
    )
