"""Closing a job: the customer signs off with a photo, is called back, and a supervisor may
review. A completed job closes by itself once the callback says fixed and the proof of work is
compliant; what is missing is always visible. A failed callback or review leads to a return visit."""

from __future__ import annotations

from datetime import timedelta

from support.moments import T0, iso
from support.photos import KRAKOW, good_photo, half_an_hour_on_site, image_bytes, upload
from support.problems import assert_problem
from support.workflow import event_types, tap

from dispatch.visits import service as visits


def completed_with_photo(api, photo=None):
    tech, job, phone = half_an_hour_on_site(api)
    r = upload(api, job["id"], photo or good_photo(api), phone)
    assert r.status_code == 201, r.text
    api.clock.advance(minutes=5)
    tap(api, job, "completed", phone=phone)
    return tech, job, phone, r.json()


def sign(api, job_id, photo_id, phone, name="Maria Dąbrowska"):
    return api.post(f"/v1/jobs/{job_id}/signoff", {"signer_name": name, "photo_id": photo_id}, headers=phone)


def call(api, job_id, **body):
    return api.post(f"/v1/jobs/{job_id}/callbacks", {"reached": True, "fixed": True, "satisfaction": 5, **body})


def closeout(api, job_id, who="dispatcher"):
    r = api.get(f"/v1/jobs/{job_id}/closeout", who=who)
    assert r.status_code == 200, r.text
    return r.json()


def status_of(api, job_id):
    return api.get(f"/v1/jobs/{job_id}").json()["status"]


def test_signed_off_called_back_fixed_and_compliant_closes_by_itself(api):
    _, job, phone, photo = completed_with_photo(api)
    assert closeout(api, job["id"])["missing"] == ["signoff", "callback"]
    r = sign(api, job["id"], photo["id"], phone)
    assert r.status_code == 201, r.text
    assert (r.json()["visit_number"], r.json()["photo_verdict"], r.json()["job_status"]) == (1, "verified", "completed")
    api.clock.advance(hours=2)
    r = call(api, job["id"], note="Works, thank you")
    assert r.status_code == 201, r.text
    assert (r.json()["job_status"], r.json()["missing"], r.json()["attempt"]) == ("closed", [], 1)
    closed = api.get(f"/v1/jobs/{job['id']}").json()
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    assert closed["sla"]["state"] == "met"  # closing keeps the completion's verdict
    state = closeout(api, job["id"])
    assert (state["compliant"], state["signer_name"], state["satisfaction"]) == (True, "Maria Dąbrowska", 5)
    types = event_types(api, job)
    for expected in (
        "visit_started",
        "photo_uploaded",
        "photo_verdict",
        "visit_ended",
        "signed_off",
        "callback",
        "job_closed",
    ):
        assert expected in types
    assert [j["id"] for j in api.get("/v1/jobs", params={"status": "closed"}).json()["items"]] == [job["id"]]
    assert [j["id"] for j in api.get("/v1/jobs", params={"sla_state": "met"}).json()["items"]] == [job["id"]]
    # A closed job takes no more photos, calls or sign-offs.
    assert upload(api, job["id"], image_bytes(colour=(1, 1, 1)), phone).json()["code"] == "job-closed"
    assert call(api, job["id"]).json()["code"] == "not-completed"


def test_the_callback_may_come_first_and_the_sign_off_closes_it(api):
    _, job, phone, photo = completed_with_photo(api)
    assert call(api, job["id"]).json()["missing"] == ["signoff"]
    assert status_of(api, job["id"]) == "completed"
    assert sign(api, job["id"], photo["id"], phone).json()["job_status"] == "closed"


def test_an_unreached_customer_is_called_again_later_and_the_attempts_are_counted(api):
    _, job, phone, photo = completed_with_photo(api)
    sign(api, job["id"], photo["id"], phone)
    r = api.post(f"/v1/jobs/{job['id']}/callbacks", {"reached": False, "note": "voicemail"})
    assert r.status_code == 201, r.text
    assert r.json()["retry_after"] == iso(api.clock.now() + timedelta(minutes=120))
    assert r.json()["missing"] == ["callback"]
    api.clock.advance(hours=2)
    assert api.post(f"/v1/jobs/{job['id']}/callbacks", {"reached": False}).json()["attempt"] == 2
    state = closeout(api, job["id"])
    assert state["unreached_attempts"] == 2 and state["retry_after"] is not None
    assert call(api, job["id"]).json()["job_status"] == "closed"
    calls = api.get(f"/v1/jobs/{job['id']}/callbacks").json()["items"]
    assert [(c["attempt"], c["reached"]) for c in calls] == [(1, False), (2, False), (3, True)]


def test_callback_answers_are_checked(api):
    _, job, _, _ = completed_with_photo(api)
    bad = [
        ({"reached": False, "fixed": True}, "unreached-with-answers"),
        ({"reached": False, "satisfaction": 3}, "unreached-with-answers"),
        ({"reached": True}, "fixed-required"),
        ({"reached": True, "fixed": True, "satisfaction": 6}, "validation-failed"),
        ({"reached": True, "fixed": True, "satisfaction": 0}, "validation-failed"),
        ({"reached": "yes", "fixed": True}, "validation-failed"),
    ]
    for body, code in bad:
        r = api.post(f"/v1/jobs/{job['id']}/callbacks", body)
        assert_problem(r, 422, code)
    assert api.get(f"/v1/jobs/{job['id']}/callbacks").json()["items"] == []


def test_customers_are_called_back_only_once_the_job_is_completed(api):
    _, job, _phone = half_an_hour_on_site(api)
    r = call(api, job["id"])
    assert_problem(r, 409, "not-completed")
    assert closeout(api, job["id"])["missing"] == ["job-not-completed"]


def test_not_fixed_on_the_callback_means_a_return_visit_with_its_own_sign_off(api):
    tech, job, phone, photo = completed_with_photo(api)
    sign(api, job["id"], photo["id"], phone)
    r = call(api, job["id"], fixed=False, satisfaction=2, note="Still leaks")
    assert (r.json()["job_status"], r.json()["missing"]) == ("completed", ["callback-not-fixed"])
    back = api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "callback_not_fixed"}).json()
    assert (back["job"]["status"], back["job"]["technician_id"]) == ("assigned", tech["id"])
    tap(api, job, "on_site", phone=phone)
    second = upload(
        api, job["id"], image_bytes(gps=(52.2319, 21.0067), gps_time=api.clock.now(), colour=(3, 3, 3)), phone
    ).json()
    assert second["visit_number"] == 2
    tap(api, job, "completed", phone=phone)
    # The second visit needs its own sign-off and callback: the first ones were about the first.
    assert closeout(api, job["id"])["missing"] == ["signoff", "callback"]
    stale = sign(api, job["id"], photo["id"], phone)  # the photo of the fix that did not hold
    assert_problem(stale, 422, "photo-of-another-visit")
    assert sign(api, job["id"], second["id"], phone).status_code == 201
    assert call(api, job["id"]).json()["job_status"] == "closed"
    with api.database.transaction(write=False) as session:
        rates = visits.fix_rates(session, T0, T0 + timedelta(days=1))
    assert (rates.jobs, rates.first_time_fixed, rates.with_return_visit) == (1, 0, 1)
    assert api.get(f"/v1/jobs/{job['id']}").json()["sla"]["return_visits"] == 1


def test_a_photo_that_does_not_match_keeps_the_job_open_until_a_supervisor_accepts_it(api):
    _, job, phone, photo = completed_with_photo(api, image_bytes(gps=KRAKOW, gps_time=T0))
    assert photo["verdict"] == "mismatch"
    assert sign(api, job["id"], photo["id"], phone).json()["photo_verdict"] == "mismatch"
    assert call(api, job["id"]).json()["missing"] == ["photo-mismatch"]
    assert closeout(api, job["id"])["compliant"] is False
    r = api.post(f"/v1/jobs/{job['id']}/compliance-reviews", {"passed": True}, who="supervisor")
    assert r.status_code == 201, r.text
    assert (r.json()["job_status"], r.json()["missing"]) == ("closed", [])


def test_a_failed_compliance_review_needs_a_reason_blocks_closing_and_leads_to_a_return_visit(api):
    _, job, phone, photo = completed_with_photo(api)
    sign(api, job["id"], photo["id"], phone)
    r = api.post(f"/v1/jobs/{job['id']}/compliance-reviews", {"passed": False}, who="supervisor")
    assert_problem(r, 422, "reason-required")
    r = api.post(
        f"/v1/jobs/{job['id']}/compliance-reviews",
        {"passed": False, "reason": "The photo shows a different appliance"},
        who="supervisor",
    )
    assert r.status_code == 201 and r.json()["missing"] == ["compliance-review-failed", "callback"]
    assert call(api, job["id"]).json()["job_status"] == "completed"
    assert api.post(f"/v1/jobs/{job['id']}/compliance-reviews", {"passed": True}, who="dispatcher").status_code == 403
    r = api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "compliance_failed"})
    assert r.status_code == 201 and r.json()["visit"]["reason"] == "compliance_failed"
    types = event_types(api, job)
    assert "compliance_reviewed" in types and "return_visit_planned" in types


def test_a_fault_that_returns_after_closing_reopens_the_job(api):
    _, job, phone, photo = completed_with_photo(api)
    sign(api, job["id"], photo["id"], phone)
    call(api, job["id"])
    assert status_of(api, job["id"]) == "closed"
    api.clock.advance(days=30)
    body = api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "fault_returned", "note": "Leaks again"}).json()
    assert body["job"]["closed_at"] is None and body["job"]["completed_at"] is None
    assert body["job"]["sla"]["state"] == "breached"  # the first deadline stands: the fault was not fixed in time


def test_sign_off_rules(api):
    _, job, phone, photo = completed_with_photo(api)
    _, other_job, other_phone = half_an_hour_on_site(api, name="Other", lat=52.2318, lon=21.0066)
    other_photo = upload(api, other_job["id"], image_bytes(colour=(7, 7, 7)), other_phone).json()
    r = sign(api, job["id"], other_photo["id"], phone)
    assert_problem(r, 422, "photo-not-of-job")
    assert sign(api, job["id"], 999_999, phone).json()["code"] == "photo-not-of-job"
    assert sign(api, job["id"], photo["id"], phone, name="  ").status_code == 422
    assert sign(api, job["id"], photo["id"], phone).status_code == 201
    r = sign(api, job["id"], photo["id"], phone)
    assert_problem(r, 409, "already-signed-off")
    assert sign(api, job["id"], photo["id"], other_phone).status_code == 404  # not their job
    fresh = api.job()
    api.technician(name="Third", lat=52.2319, lon=21.0067)
    api.post(f"/v1/jobs/{fresh['id']}/dispatch")
    r = api.post(f"/v1/jobs/{fresh['id']}/signoff", {"signer_name": "X", "photo_id": photo["id"]})
    assert r.status_code == 403  # dispatchers do not sign for customers


def test_reviews_are_of_completed_work(api):
    _, job, _ = half_an_hour_on_site(api)
    r = api.post(f"/v1/jobs/{job['id']}/compliance-reviews", {"passed": True}, who="supervisor")
    assert_problem(r, 409, "not-completed")


def test_the_call_list_shows_customers_to_call_now_longest_waiting_first(api):
    _, first, phone, _ = completed_with_photo(api)
    api.clock.advance(minutes=10)
    _, second, _, _ = completed_with_photo(api)
    due = api.get("/v1/callbacks/due").json()["items"]
    assert [(d["job_id"], d["unreached_attempts"], d["retry_after"]) for d in due] == [
        (first["id"], 0, None),
        (second["id"], 0, None),
    ]
    assert due[0]["customer_phone"] == "+48 22 555 01 00"
    api.post(f"/v1/jobs/{first['id']}/callbacks", {"reached": False})  # voicemail: try again in two hours
    assert [d["job_id"] for d in api.get("/v1/callbacks/due").json()["items"]] == [second["id"]]
    call(api, second["id"], fixed=False)  # reached: off the list, whatever they said
    assert api.get("/v1/callbacks/due").json()["items"] == []
    api.clock.advance(hours=2)
    [again] = api.get("/v1/callbacks/due").json()["items"]
    assert (again["job_id"], again["unreached_attempts"]) == (first["id"], 1)
    assert api.get("/v1/callbacks/due", headers=phone).status_code == 403


def test_proof_of_work_figures_for_the_kpis(api):
    from dispatch.closeout import service as closeout

    _, good, phone, photo = completed_with_photo(api)
    sign(api, good["id"], photo["id"], phone)
    call(api, good["id"], satisfaction=4)
    _, far, far_phone, far_photo = completed_with_photo(api, image_bytes(gps=KRAKOW, gps_time=T0, colour=(4, 4, 4)))
    sign(api, far["id"], far_photo["id"], far_phone)
    api.post(f"/v1/jobs/{far['id']}/callbacks", {"reached": False})
    completed_with_photo(api, image_bytes(colour=(6, 6, 6)))  # never signed off
    with api.database.transaction(write=False) as session:
        figures = closeout.proof_figures(session, T0, T0 + timedelta(days=1))
        assert (figures.fixed_visits, figures.signed_off, figures.compliant) == (3, 2, 1)
        assert figures.photo_verdicts == {"verified": 1, "mismatch": 1}
        assert figures.authenticity_rate == 0.5 and figures.compliance_rate == 1 / 3
        assert (figures.calls, figures.reached, figures.reach_rate, figures.satisfaction_mean) == (2, 1, 0.5, 4.0)
        assert closeout.proof_figures(session, T0 - timedelta(days=2), T0).compliance_rate is None


def test_an_unanswered_call_stays_on_the_list_for_later_saying_when_to_retry(api):
    _, job, _, _ = completed_with_photo(api)
    r = api.post(f"/v1/jobs/{job['id']}/callbacks", {"reached": False})
    assert r.status_code == 201, r.text
    retry = r.json()["retry_after"]
    assert api.get("/v1/callbacks/due").json()["items"] == []  # not due yet …
    [later] = api.get("/v1/callbacks/due", params={"include_later": "true"}).json()["items"]
    assert (later["job_id"], later["unreached_attempts"], later["retry_after"]) == (job["id"], 1, retry)
