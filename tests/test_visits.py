"""Visits: every trip to the customer is numbered, timed from the phone's taps, and ends with an
outcome; a job parked for parts ends its visit `needs_parts`; return visits reopen a completed
job and send the same technician back when they can; first-time-fix figures come from visits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from support.moments import T0
from support.parts import CENTRAL, set_up_stockroom
from support.problems import assert_problem
from support.workflow import assign, completed_job, dispatched_job, event_types, send_status, tap

from dispatch.visits import service as visits
from dispatch.visits.models import Visit

PUMP = {"sku": "PUMP-1", "name": "Pump", "categories": ["washing machine"], "lead_time_hours": 48}


def visits_of(api, job_id, who="dispatcher", headers=None):
    r = api.get(f"/v1/jobs/{job_id}/visits", who=who, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_a_trip_to_the_customer_is_a_visit_with_the_phones_times_and_outcome(api):
    tech, job, phone = dispatched_job(api)
    assert visits_of(api, job["id"]) == []  # assigned is not a trip yet
    left_home = api.clock.now() - timedelta(minutes=2)  # the phone was offline for a moment
    tap(api, job, "en_route", phone=phone, at=left_home)
    api.clock.advance(minutes=25)
    tap(api, job, "on_site", phone=phone)
    api.clock.advance(minutes=50)
    tap(api, job, "completed", phone=phone)
    [visit] = visits_of(api, job["id"], headers=phone)
    assert visit["number"] == 1 and visit["technician_id"] == tech["id"]
    assert (visit["reason"], visit["return_visit"], visit["outcome"]) == ("first", False, "fixed")
    assert visit["en_route_at"].startswith(left_home.isoformat()[:19])
    assert visit["on_site_at"].startswith((T0 + timedelta(minutes=25)).isoformat()[:19])
    assert visit["left_at"].startswith((T0 + timedelta(minutes=75)).isoformat()[:19])
    types = event_types(api, job)
    assert types.index("visit_started") < types.index("visit_ended")


def test_a_technician_who_forgets_en_route_still_starts_a_visit_on_site(api):
    _, job, phone = dispatched_job(api)
    tap(api, job, "on_site", phone=phone)
    [visit] = visits_of(api, job["id"])
    assert visit["en_route_at"] is None and visit["on_site_at"] is not None and visit["outcome"] is None


def test_a_customer_who_is_not_home_ends_the_visit_customer_absent_and_the_next_trip_is_visit_two(api):
    tech, job, phone = dispatched_job(api)
    tap(api, job, "on_site", phone=phone)
    tap(api, job, "unable", phone=phone, outcome="customer_absent", note="Nobody answered the door")
    api.clock.advance(hours=2)
    assign(api, job, tech, reason="rebooked")
    tap(api, job, "en_route", phone=phone)
    first, second = visits_of(api, job["id"])
    assert (first["number"], first["outcome"], first["note"]) == (1, "customer_absent", "Nobody answered the door")
    assert (second["number"], second["reason"], second["outcome"]) == (2, "follow_up", None)


def test_unable_without_an_outcome_is_not_fixed_and_an_outcome_needs_unable(api):
    _, job, phone = dispatched_job(api)
    tap(api, job, "on_site", phone=phone)
    assert_problem(send_status(api, job, "completed", phone=phone, outcome="customer_absent"), 422)
    tap(api, job, "unable", phone=phone)
    assert visits_of(api, job["id"])[0]["outcome"] == "not_fixed"


def test_a_job_parked_for_parts_ends_the_visit_needs_parts(api):
    set_up_stockroom(api, locations=(CENTRAL,), parts=(PUMP,))  # nothing on any shelf
    _, job, phone = dispatched_job(api)
    tap(api, job, "on_site", phone=phone)
    r = api.post(f"/v1/jobs/{job['id']}/parts", {"sku": "PUMP-1", "quantity": 1}, headers=phone)
    assert r.status_code == 201 and r.json()["state"] == "backordered"
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "waiting_parts"
    [visit] = visits_of(api, job["id"])
    assert visit["outcome"] == "needs_parts" and visit["left_at"] is not None


def test_cancelling_during_a_visit_ends_it(api):
    _, job, phone = dispatched_job(api)
    tap(api, job, "en_route", phone=phone)
    tap(api, job, "cancelled")  # by the dispatcher
    assert visits_of(api, job["id"])[0]["outcome"] == "not_fixed"


def test_a_technician_sees_visits_only_of_their_own_jobs(api):
    _, job, _ = dispatched_job(api)
    other = api.technician(name="Other", lat=52.5, lon=21.3)
    assert api.get(f"/v1/jobs/{job['id']}/visits", headers=api.as_technician(other["id"])).status_code == 404


# Return visits -------------------------------------------------------------------------------


def test_a_return_visit_reopens_the_job_and_sends_the_same_technician_back(api):
    tech, job, phone = completed_job(api)
    api.technician(name="Nearer", lat=52.2319, lon=21.0068)  # nearer now, but continuity wins
    api.clock.advance(hours=3)
    r = api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "callback_not_fixed", "note": "Still leaks"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["job"]["status"] == "assigned" and body["job"]["technician_id"] == tech["id"]
    assert body["job"]["completed_at"] is None
    assert body["job"]["sla"]["return_visits"] == 1
    assert body["job"]["sla"]["state"] in ("on_track", "at_risk")  # open again, against the first deadline
    assert body["visit"]["number"] == 2 and body["visit"]["return_visit"] is True
    assert body["visit"]["reason"] == "callback_not_fixed" and body["visit"]["technician_id"] == tech["id"]
    assert "return_visit_planned" in event_types(api, job) and "sent_back" in event_types(api, job)
    # The planned visit is the one the technician's taps fill in: no third visit appears.
    tap(api, job, "on_site", phone=phone)
    tap(api, job, "completed", phone=phone)
    visits = visits_of(api, job["id"])
    assert [(v["number"], v["outcome"]) for v in visits] == [(1, "fixed"), (2, "fixed")]
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "completed"


def test_when_the_last_technician_cannot_go_back_the_nearest_available_goes(api):
    tech, job, _ = completed_job(api)
    api.patch(f"/v1/technicians/{tech['id']}", {"on_duty": False})
    other = api.technician(name="Colleague", lat=52.24, lon=21.02)
    body = api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "fault_returned"}).json()
    assert body["job"]["technician_id"] == other["id"] and body["visit"]["technician_id"] == other["id"]


def test_with_nobody_available_the_returned_job_is_ready_for_a_dispatcher(api):
    tech, job, _ = completed_job(api)
    api.patch(f"/v1/technicians/{tech['id']}", {"on_duty": False})
    body = api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "customer_request"}).json()
    assert body["job"]["status"] == "ready" and body["job"]["technician_id"] is None
    api.patch(f"/v1/technicians/{tech['id']}", {"on_duty": True})
    assert api.post(f"/v1/jobs/{job['id']}/dispatch").status_code == 200
    phone = api.as_technician(tech["id"])
    tap(api, job, "en_route", phone=phone)
    assert [(v["number"], v["technician_id"]) for v in visits_of(api, job["id"])] == [(1, tech["id"]), (2, tech["id"])]


def test_only_completed_or_closed_jobs_get_return_visits_and_only_from_staff(api):
    _, job, phone = dispatched_job(api)
    assert_problem(api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "other"}), 409, "not-returnable")
    assert api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "other"}, headers=phone).status_code == 403
    assert api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "because"}).status_code == 422


# First-time fix ------------------------------------------------------------------------------


def test_first_time_fix_and_return_visit_rates(api):
    tech = api.technician(capacity=5)
    phone = api.as_technician(tech["id"])

    def job_through(*steps):
        job = api.job()
        api.post(f"/v1/jobs/{job['id']}/dispatch")
        for step in steps:
            if step == "return":
                assert (
                    api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "callback_not_fixed"}).status_code == 201
                )
            elif step == "unable":
                tap(api, job, "unable", phone=phone)
                assign(api, job, tech, reason="again")
            else:
                tap(api, job, step, phone=phone)
        return job

    job_through("on_site", "completed")  # fixed first time
    job_through("on_site", "completed", "return", "on_site", "completed")  # came back
    job_through("on_site", "unable", "on_site", "completed")  # two trips, no return visit
    job_through("on_site")  # not fixed yet: not counted
    with api.database.transaction(write=False) as session:
        rates = visits.fix_rates(session, T0, T0 + timedelta(days=1))
        assert (rates.jobs, rates.first_time_fixed, rates.with_return_visit) == (3, 1, 1)
        assert rates.first_time_fix_rate == 1 / 3 and rates.return_visit_rate == 1 / 3
        assert visits.fix_rates(session, T0 + timedelta(days=1), T0 + timedelta(days=2)).first_time_fix_rate is None
        assert visits.fix_rates(session, T0, T0 + timedelta(days=1), technician_id=tech["id"] + 1).jobs == 0
        assert visits.fix_rates(session, T0, T0 + timedelta(days=1), outlet_id=1).jobs == 0


def test_visit_numbers_are_unique_per_job_in_the_database(api):
    _, job, phone = dispatched_job(api)
    tap(api, job, "on_site", phone=phone)
    with pytest.raises(IntegrityError), api.database.transaction() as session:
        session.add(Visit(job_id=job["id"], number=1, reason="first", planned_at=T0, created_by="test"))
        session.flush()
