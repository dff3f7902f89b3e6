"""Sending the nearest available technician, and saying why when nobody can go."""

from datetime import time, timedelta

import pytest
from support.api import CUSTOMER, job_body
from support.moments import T0
from support.problems import assert_problem
from support.workflow import events_of, tap


def test_dispatch_sends_the_nearest_technician_with_the_skill(api):
    far = api.technician(name="Far", lat=52.40, lon=21.00)
    near = api.technician(name="Near", lat=52.235, lon=21.01)
    api.technician(name="Nearest but wrong skill", lat=52.2320, lon=21.0068, skills=["sofa"])
    job = api.job()
    r = api.post(f"/v1/jobs/{job['id']}/dispatch")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["technician_id"] == near["id"]
    assert body["distance_km"] == pytest.approx(0.45, abs=0.05)
    assert body["job"]["status"] == "assigned" and body["job"]["technician_id"] == near["id"]
    considered = [c["technician_id"] for c in body["candidates"]]
    assert near["id"] in considered
    assert all(c["technician_id"] != far["id"] or c["distance_km"] > 18 for c in body["candidates"])
    # The sofa specialist was never a candidate for a washing machine.
    assert all(c["name"] != "Nearest but wrong skill" for c in body["candidates"])


def test_dispatch_explains_who_was_passed_over_and_why(api):
    busy = api.technician(name="Busy", lat=52.2320, lon=21.0070, capacity=1)
    api.post(f"/v1/jobs/{api.job()['id']}/assign", {"technician_id": busy["id"], "reason": "regular customer"})
    off = api.technician(name="Off duty", lat=52.2321, lon=21.0071, on_duty=False)
    blocked = api.technician(name="Blocked", lat=52.2322, lon=21.0072, active=False)
    chosen = api.technician(name="Free", lat=52.26, lon=21.02)
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["technician_id"] == chosen["id"]
    why = {c["technician_id"]: c["passed_over"] for c in body["candidates"]}
    assert why == {busy["id"]: "at_capacity", off["id"]: "off_duty", blocked["id"]: "inactive", chosen["id"]: None}


def test_a_technician_outside_shift_hours_is_not_sent(api):
    # 09:00 UTC is 10:00 in Warsaw: an afternoon shift has not started yet.
    afternoon = {"start": "14:00", "end": "22:00", "timezone": "Europe/Warsaw"}
    api.technician(name="Afternoon", lat=52.2320, lon=21.0070, shift=afternoon)
    morning = api.technician(
        name="Morning", lat=52.30, lon=21.05, shift={"start": "08:00", "end": "16:00", "timezone": "Europe/Warsaw"}
    )
    body = api.post(f"/v1/jobs/{api.job()['id']}/dispatch").json()
    assert body["technician_id"] == morning["id"]


def test_the_search_widens_until_it_finds_someone(api):
    krakow = api.technician(name="Kraków", lat=50.0647, lon=19.9450)
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.status_code == 200, r.text
    assert r.json()["technician_id"] == krakow["id"]
    assert r.json()["distance_km"] == pytest.approx(252, abs=5)


def _no_one(api, job_id):
    body = assert_problem(api.post(f"/v1/jobs/{job_id}/dispatch"), 409, "no-technician-available")
    after = api.get(f"/v1/jobs/{job_id}").json()
    assert after["status"] == "new" and after["technician_id"] is None  # the job stays waiting
    return body


def test_nobody_with_the_skill_is_a_clear_409(api):
    api.technician(skills=["sofa"])
    body = _no_one(api, api.job()["id"])
    assert body["reason"] == "no_skill"
    assert "washing machine" in body["detail"]


def test_nobody_on_duty_is_a_clear_409(api):
    api.technician(on_duty=False)
    assert _no_one(api, api.job()["id"])["reason"] == "none_on_duty"


def test_everybody_at_capacity_is_a_clear_409(api):
    tech = api.technician(capacity=1)
    first = api.job()
    assert api.post(f"/v1/jobs/{first['id']}/dispatch").json()["technician_id"] == tech["id"]
    body = _no_one(api, api.job()["id"])
    assert body["reason"] == "all_at_capacity"
    assert body["candidates"][0]["passed_over"] == "at_capacity"


def test_nobody_on_shift_is_a_clear_409(api):
    api.technician(shift={"start": "20:00", "end": "23:00", "timezone": "Europe/Warsaw"})
    assert _no_one(api, api.job()["id"])["reason"] == "none_on_shift"


def test_a_job_already_assigned_is_not_dispatched_again(api):
    api.technician(capacity=2)
    job = api.job()
    api.post(f"/v1/jobs/{job['id']}/dispatch")
    r = api.post(f"/v1/jobs/{job['id']}/dispatch")
    assert_problem(r, 409, "job-not-dispatchable")


def test_completing_a_job_frees_the_technician_for_the_next(api):
    tech = api.technician(capacity=1)
    first, second = api.job(), api.job()
    api.post(f"/v1/jobs/{first['id']}/dispatch")
    assert api.post(f"/v1/jobs/{second['id']}/dispatch").status_code == 409
    tap(api, first, "en_route", "on_site", "completed", phone=api.as_technician(tech["id"]), at=T0)
    assert api.get(f"/v1/technicians/{tech['id']}").json()["open_jobs"] == 0
    assert api.post(f"/v1/jobs/{second['id']}/dispatch").json()["technician_id"] == tech["id"]


def test_a_dispatcher_assigns_by_hand_with_a_reason(api):
    near = api.technician(lat=52.2320, lon=21.0070)
    regular = api.technician(name="The customer's usual technician", lat=52.30, lon=21.10, skills=["sofa"])
    job = api.job()
    r = api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": regular["id"], "reason": "customer asked for Jan"})
    assert r.status_code == 200, r.text
    assert r.json()["technician_id"] == regular["id"]
    event = events_of(api, job)[-1]
    assert event["type"] == "assigned"
    assert event["data"]["reason"] == "customer asked for Jan"
    assert event["data"]["without_skill"] is True  # the override is on the record
    # Moving it to another technician gives the first one's capacity back.
    r = api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": near["id"], "reason": "closer"})
    assert r.status_code == 200
    assert api.get(f"/v1/technicians/{regular['id']}").json()["open_jobs"] == 0
    assert api.get(f"/v1/technicians/{near['id']}").json()["open_jobs"] == 1


def test_assigning_by_hand_never_exceeds_capacity_or_uses_a_blocked_technician(api):
    full = api.technician(capacity=1)
    blocked = api.technician(active=False)
    api.post(f"/v1/jobs/{api.job()['id']}/assign", {"technician_id": full["id"], "reason": "x"})
    job = api.job()
    r = api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": full["id"], "reason": "x"})
    assert_problem(r, 409, "technician-at-capacity")
    r = api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": blocked["id"], "reason": "x"})
    assert_problem(r, 409, "technician-inactive")
    r = api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": 9999, "reason": "x"})
    assert_problem(r, 404, "technician-not-found")
    r = api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": full["id"]})
    assert r.status_code == 422


def test_only_dispatchers_dispatch(api):
    tech = api.technician()
    job = api.job()
    r = api.post(f"/v1/jobs/{job['id']}/dispatch", headers=api.as_technician(tech["id"]))
    assert_problem(r, 403, "role-not-allowed")
    assert api.post("/v1/jobs/999/dispatch").status_code == 404


def test_auto_dispatch_on_arrival(api, settings):
    settings.auto_dispatch = True
    tech = api.technician()
    job = api.job()
    assert job["status"] == "assigned" and job["technician_id"] == tech["id"]
    # When nobody is free the job is still accepted, waits, and its timeline says why.
    waiting = api.job()
    assert waiting["status"] == "new"
    events = events_of(api, waiting)
    assert events[-1]["type"] == "dispatch_failed"
    assert events[-1]["data"]["reason"] == "all_at_capacity"


def test_a_job_without_a_location_cannot_be_dispatched_until_placed(api):
    api.technician()
    body = job_body(customer={"lat": None, "lon": None, "address": "Somewhere 1"})
    job = api.post("/v1/jobs", body).json()
    assert job["needs_location"] is True
    r = api.post(f"/v1/jobs/{job['id']}/dispatch")
    assert_problem(r, 409, "job-needs-location")
    api.post(f"/v1/jobs/{job['id']}/location", {"lat": CUSTOMER[0], "lon": CUSTOMER[1]})
    assert api.post(f"/v1/jobs/{job['id']}/dispatch").status_code == 200


def test_shift_hours_are_read_in_the_technicians_time_zone(api):
    # 09:00 UTC: 10:00 in Warsaw (on shift 08-16) but 04:00 in New York (off shift 08-16).
    api.technician(
        name="New York hours",
        lat=52.2320,
        lon=21.0070,
        shift={"start": "08:00", "end": "16:00", "timezone": "America/New_York"},
    )
    warsaw = api.technician(
        name="Warsaw hours",
        lat=52.25,
        lon=21.03,
        shift={"start": time(8).isoformat(), "end": "16:00", "timezone": "Europe/Warsaw"},
    )
    assert api.post(f"/v1/jobs/{api.job()['id']}/dispatch").json()["technician_id"] == warsaw["id"]


def _gives_it_back(api, job_id, technician_id, why="Van broke down on the S8"):
    phone = api.as_technician(technician_id)
    r = api.post(f"/v1/jobs/{job_id}/status", {"status": "unable", "at": T0.isoformat(), "note": why}, headers=phone)
    assert r.status_code == 200, r.text


def test_a_re_dispatch_never_sends_the_job_back_to_the_technician_who_gave_it_back(api):
    broke_down = api.technician(name="Van broke down", lat=52.2320, lon=21.0070)
    other = api.technician(name="Further away", lat=52.26, lon=21.02)
    job = api.job()
    assert api.post(f"/v1/jobs/{job['id']}/dispatch").json()["technician_id"] == broke_down["id"]
    _gives_it_back(api, job["id"], broke_down["id"])

    r = api.post(f"/v1/jobs/{job['id']}/dispatch")
    assert r.status_code == 200, r.text
    assert r.json()["technician_id"] == other["id"]
    why = {c["technician_id"]: c["passed_over"] for c in r.json()["candidates"]}
    assert why == {broke_down["id"]: "gave_back", other["id"]: None}
    # A dispatcher who knows the van is fixed may still send them by hand.
    r = api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": broke_down["id"], "reason": "van repaired"})
    assert r.status_code == 200, r.text


def test_when_only_the_technician_who_gave_it_back_could_go_the_409_says_so(api):
    only = api.technician(name="The only one", lat=52.2320, lon=21.0070)
    job = api.job()
    api.post(f"/v1/jobs/{job['id']}/dispatch")
    _gives_it_back(api, job["id"], only["id"])
    r = api.post(f"/v1/jobs/{job['id']}/dispatch")
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "all_gave_back"
    assert [(c["technician_id"], c["passed_over"]) for c in r.json()["candidates"]] == [(only["id"], "gave_back")]


def test_free_technicians_who_were_merely_further_away_are_said_to_be_further_not_taken(api):
    near = api.technician(name="Near", lat=52.2320, lon=21.0070)
    far = api.technician(name="Far", lat=52.25, lon=21.03)
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.status_code == 200, r.text
    assert r.json()["technician_id"] == near["id"]
    why = {c["technician_id"]: c["passed_over"] for c in r.json()["candidates"]}
    assert why == {near["id"]: None, far["id"]: "further"}
    # Each candidate says how old the position behind its distance is.
    assert all(c["location_at"] == T0.isoformat().replace("+00:00", "Z") for c in r.json()["candidates"])


def test_a_tap_with_the_phones_position_moves_the_technician_so_nearest_is_measured_from_there(api):
    anna = api.technician(name="Anna", lat=52.40, lon=21.00, capacity=2)  # where she was this morning
    piotr = api.technician(name="Piotr", lat=52.26, lon=21.02)
    job = api.job()
    api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": anna["id"], "reason": "regular customer"})
    tap = (T0 + timedelta(minutes=5)).isoformat()
    r = api.post(
        f"/v1/jobs/{job['id']}/status",
        {"status": "on_site", "at": tap, "lat": 52.2320, "lon": 21.0068},
        headers=api.as_technician(anna["id"]),
    )
    assert r.status_code == 200, r.text
    moved = api.get(f"/v1/technicians/{anna['id']}").json()
    assert (moved["lat"], moved["lon"], moved["location_at"]) == (52.2320, 21.0068, tap.replace("+00:00", "Z"))
    # The next job next door goes to Anna, who is there now, not to Piotr.
    api.clock.advance(timedelta(minutes=10))
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.json()["technician_id"] == anna["id"], r.text
    assert piotr["id"] in {c["technician_id"] for c in r.json()["candidates"]}
