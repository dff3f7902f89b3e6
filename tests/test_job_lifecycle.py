"""A technician taps through a job on the phone; illegal moves are refused."""

from datetime import timedelta

import pytest
from support.api import job_body
from support.moments import T0, iso
from support.problems import assert_problem
from support.workflow import assign, dispatched_job, events_of, send_status, tap

from dispatch.jobs.lifecycle import TRANSITIONS, JobStatus


@pytest.fixture
def assigned(api):
    return dispatched_job(api, capacity=2)


def test_a_technician_goes_en_route_arrives_and_completes(api, assigned):
    tech, job, phone = assigned
    assert tap(api, job, "en_route", phone=phone)["status"] == "en_route"
    api.clock.advance(minutes=25)
    assert tap(api, job, "on_site", phone=phone, lat=52.2319, lon=21.0067)["status"] == "on_site"
    api.clock.advance(hours=1)
    done = tap(api, job, "completed", phone=phone, note="replaced the drum bearing")
    assert done["status"] == "completed"
    assert done["completed_at"] == iso(T0 + timedelta(minutes=85))
    assert done["sla"]["state"] == "met"
    assert api.get(f"/v1/technicians/{tech['id']}").json()["open_jobs"] == 0
    changes = events_of(api, job, "status_changed")
    assert [e["data"].get("to") for e in changes] == ["en_route", "on_site", "completed"]
    assert changes[-1]["data"]["note"] == "replaced the drum bearing"


def test_a_job_completed_after_its_deadline_missed_it(api, assigned):
    _, job, phone = assigned
    api.clock.advance(hours=25)
    assert tap(api, job, "on_site", "completed", phone=phone)["sla"]["state"] == "missed"


@pytest.mark.parametrize("target", ["completed", "assigned", "new"])
def test_illegal_moves_are_409_and_change_nothing(api, assigned, target):
    _, job, phone = assigned
    r = send_status(api, job, target, phone=phone)
    if target in ("assigned", "new"):
        # not something anyone reports: set by intake and dispatch
        body = assert_problem(r, 422)
        assert ["body", "status"] in [e["loc"] for e in body["errors"]]
    else:
        body = assert_problem(r, 409, "illegal-transition")
        assert body["current_status"] == "assigned"
        assert "completed" not in body["allowed"]
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "assigned"


def test_a_completed_job_cannot_move_again(api, assigned):
    _, job, phone = assigned
    tap(api, job, "on_site", "completed", phone=phone)
    r = send_status(api, job, "en_route", phone=phone)
    assert assert_problem(r, 409)["current_status"] == "completed"


def test_unable_frees_the_technician_and_the_job_waits_for_another(api, assigned):
    tech, job, phone = assigned
    tap(api, job, "en_route", phone=phone)
    gave_up = tap(api, job, "unable", phone=phone, note="van broke down")
    assert gave_up["status"] == "unable" and gave_up["technician_id"] is None
    assert api.get(f"/v1/technicians/{tech['id']}").json()["open_jobs"] == 0
    # Off the technician's list now.
    assert api.get(f"/v1/jobs/{job['id']}", headers=phone).status_code == 404
    other = api.technician(name="Backup", lat=52.30, lon=21.0)
    r = api.post(f"/v1/jobs/{job['id']}/dispatch")
    assert r.status_code == 200, r.text
    assert r.json()["technician_id"] in (tech["id"], other["id"])


def test_a_dispatcher_cancels_a_job_and_capacity_comes_back(api, assigned):
    tech, job, phone = assigned
    cancelled = tap(api, job, "cancelled", at=T0, note="customer fixed it")  # the dispatcher's key
    assert cancelled["sla"]["state"] == "cancelled"
    assert api.get(f"/v1/technicians/{tech['id']}").json()["open_jobs"] == 0
    # The technician's phone still shows it, as cancelled, so nobody drives to a customer who said no.
    mine = api.get("/v1/jobs", headers=phone, params={"status": "cancelled"}).json()["items"]
    assert [(j["id"], j["status"], j["technician_id"]) for j in mine] == [(job["id"], "cancelled", tech["id"])]


def test_a_technician_cannot_cancel(api, assigned):
    _, job, phone = assigned
    assert_problem(send_status(api, job, "cancelled", phone=phone), 422, "status-not-settable")


def test_a_device_time_from_the_future_is_refused(api, assigned):
    _, job, phone = assigned
    r = send_status(api, job, "en_route", phone=phone, at=T0 + timedelta(hours=2))
    assert_problem(r, 422, "timestamp-in-future")


def test_a_status_update_needs_its_device_time(api, assigned):
    _, job, phone = assigned
    r = api.post(f"/v1/jobs/{job['id']}/status", {"status": "en_route"}, headers=phone)
    assert ["body", "at"] in [e["loc"] for e in assert_problem(r, 422)["errors"]]


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
    tap(api, job, "en_route", phone=phone, at=set_off)
    tap(api, job, "on_site", phone=phone, at=arrived)
    assert [e["occurred_at"] for e in events_of(api, job, "status_changed")] == [iso(set_off), iso(arrived)]


def test_a_device_time_before_what_already_happened_is_refused(api, assigned):
    tech, job, phone = assigned
    api.clock.advance(hours=30)  # past the deadline
    on_site = api.clock.now()
    tap(api, job, "on_site", phone=phone, at=on_site)
    # "Completed yesterday", before it was even on site: it would turn a missed deadline into a met one.
    r = send_status(api, job, "completed", phone=phone, at=on_site - timedelta(days=1))
    assert assert_problem(r, 422, "timestamp-out-of-order")["errors"][0]["loc"] == ["body", "at"]
    # Before the job was even reported or given to them, likewise; within the clock skew is fine.
    other = assign(api, api.job(), tech, reason="x")
    r = send_status(api, other, "en_route", phone=phone, at=api.clock.now() - timedelta(hours=3))
    assert r.status_code == 422
    tap(api, other, "en_route", phone=phone, at=api.clock.now() - timedelta(minutes=4))
    tap(api, job, "completed", phone=phone)
    assert api.get(f"/v1/jobs/{job['id']}").json()["sla"]["state"] == "missed"


def test_a_request_reported_more_than_a_month_ago_is_refused(api):
    r = api.post("/v1/jobs", job_body(reported_at=(api.clock.now() - timedelta(days=31)).isoformat()))
    assert_problem(r, 422, "timestamp-too-old")
    assert (
        api.post("/v1/jobs", job_body(reported_at=(api.clock.now() - timedelta(days=29)).isoformat())).status_code
        == 201
    )
