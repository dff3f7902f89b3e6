"""Taking repair requests: validation, deadlines, visibility."""

from datetime import timedelta

import pytest
from conftest import T0, job_body


def test_a_job_is_due_24_hours_after_the_customer_reported_it(api):
    reported = T0 - timedelta(hours=2)
    job = api.job(reported_at=reported.isoformat())
    assert job["status"] == "new"
    assert job["reported_at"] == reported.isoformat().replace("+00:00", "Z")
    assert job["due_at"] == (reported + timedelta(hours=24)).isoformat().replace("+00:00", "Z")
    assert job["sla"]["state"] == "on_track"
    assert job["sla"]["time_left_seconds"] == 22 * 3600


def test_reported_at_defaults_to_when_the_request_arrived(api):
    job = api.job()
    assert job["reported_at"] == job["received_at"] == T0.isoformat().replace("+00:00", "Z")


def test_a_job_reported_19_hours_ago_is_already_at_risk(api):
    job = api.job(reported_at=(T0 - timedelta(hours=19)).isoformat())
    assert job["sla"]["state"] == "at_risk"


def test_the_sla_state_is_computed_from_the_clock_on_every_read(api):
    job = api.job()
    api.clock.advance(hours=18)
    assert api.get(f"/v1/jobs/{job['id']}").json()["sla"]["state"] == "at_risk"
    api.clock.advance(hours=6)
    body = api.get(f"/v1/jobs/{job['id']}").json()
    assert body["sla"]["state"] == "breached"
    assert body["sla"]["time_left_seconds"] == 0
    api.clock.advance(minutes=30)
    assert api.get(f"/v1/jobs/{job['id']}").json()["sla"]["time_left_seconds"] == -1800


def _problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["code"] and body["detail"] and body["type"].endswith(body["code"])
    return body


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"customer": {"lat": 91.0, "lon": 21.0}}, ["body", "customer", "lat"]),
        ({"customer": {"lat": 52.0, "lon": -181.0}}, ["body", "customer", "lon"]),
        ({"customer": {"lat": "52.1", "lon": 21.0}}, ["body", "customer", "lat"]),
        ({"product": {"category": ""}}, ["body", "product", "category"]),
        ({"priority": "whenever"}, ["body", "priority"]),
        ({"service_tier": "platinum"}, ["body", "service_tier"]),
        ({"reported_at": "2026-03-10T08:00:00"}, ["body", "reported_at"]),
        ({"fault": ""}, ["body", "fault"]),
        ({"fault": "x" * 2001}, ["body", "fault"]),
        ({"priorty": "high"}, ["body", "priorty"]),
        ({"appointment": {"start": "2026-03-10T12:00:00Z", "end": "2026-03-10T10:00:00Z"}}, ["body", "appointment"]),
    ],
)
def test_bad_requests_get_a_problem_that_names_the_field(api, change, where):
    r = api.post("/v1/jobs", job_body(**change))
    body = _problem(r, 422)
    assert any(e["loc"][: len(where)] == where for e in body["errors"]), body


def test_a_missing_product_category_is_refused(api):
    body = job_body()
    del body["product"]["category"]
    problem = _problem(api.post("/v1/jobs", body), 422)
    assert ["body", "product", "category"] in [e["loc"] for e in problem["errors"]]


def test_only_one_coordinate_is_refused(api):
    body = job_body()
    del body["customer"]["lon"]
    _problem(api.post("/v1/jobs", body), 422)


def test_a_reported_at_in_the_future_is_refused(api):
    r = api.post("/v1/jobs", job_body(reported_at=(T0 + timedelta(hours=1)).isoformat()))
    body = _problem(r, 422)
    assert body["code"] == "timestamp-in-future"
    assert body["errors"][0]["loc"] == ["body", "reported_at"]


def test_a_device_clock_a_little_ahead_is_tolerated(api):
    job = api.job(reported_at=(T0 + timedelta(seconds=60)).isoformat())
    assert job["status"] == "new"


def test_json_that_is_not_an_object_is_a_422_not_a_500(api):
    r = api.client.post(
        "/v1/jobs", content=b"[1, 2", headers={**api.headers("dispatcher"), "content-type": "application/json"}
    )
    _problem(r, 422)
    r = api.client.post(
        "/v1/jobs", content=b"null", headers={**api.headers("dispatcher"), "content-type": "application/json"}
    )
    _problem(r, 422)


def test_an_outlets_order_number_is_unique_for_that_outlet(api):
    outlet = api.post("/v1/outlets", {"code": "shop-1", "name": "Shop 1"}, who="admin").json()
    other = api.post("/v1/outlets", {"code": "shop-2", "name": "Shop 2"}, who="admin").json()
    first = api.job(headers=api.as_outlet(outlet["id"]), external_ref="ORD-1")
    assert first["outlet_id"] == outlet["id"]
    again = api.post("/v1/jobs", job_body(external_ref="ORD-1"), headers=api.as_outlet(outlet["id"]))
    assert _problem(again, 409)["job_id"] == first["id"]
    # Another outlet may use the same number for its own order.
    api.job(headers=api.as_outlet(other["id"]), external_ref="ORD-1")


def test_an_outlet_sees_only_its_own_jobs(api):
    mine = api.post("/v1/outlets", {"code": "shop-1", "name": "Shop 1"}, who="admin").json()
    theirs = api.post("/v1/outlets", {"code": "shop-2", "name": "Shop 2"}, who="admin").json()
    my_job = api.job(headers=api.as_outlet(mine["id"]))
    their_job = api.job(headers=api.as_outlet(theirs["id"]))
    listed = api.get("/v1/jobs", headers=api.as_outlet(mine["id"])).json()["items"]
    assert [j["id"] for j in listed] == [my_job["id"]]
    r = api.get(f"/v1/jobs/{their_job['id']}", headers=api.as_outlet(mine["id"]))
    assert _problem(r, 404)["code"] == "job-not-found"
    r = api.get(f"/v1/jobs/{their_job['id']}/events", headers=api.as_outlet(mine["id"]))
    _problem(r, 404)


def test_jobs_are_listed_most_urgent_first_and_paged(api):
    ids = [api.job(reported_at=(T0 - timedelta(hours=h)).isoformat())["id"] for h in (1, 10, 5, 20, 3)]
    expected = [ids[3], ids[1], ids[2], ids[4], ids[0]]
    page1 = api.get("/v1/jobs", params={"limit": 2}).json()
    page2 = api.get("/v1/jobs", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    page3 = api.get("/v1/jobs", params={"limit": 2, "cursor": page2["next_cursor"]}).json()
    assert [j["id"] for j in page1["items"] + page2["items"] + page3["items"]] == expected
    assert page3["next_cursor"] is None
    newest_first = api.get("/v1/jobs", params={"order": "-due_at"}).json()["items"]
    assert [j["id"] for j in newest_first] == expected[::-1]


def test_jobs_filter_by_sla_state(api):
    fresh = api.job()
    risky = api.job(reported_at=(T0 - timedelta(hours=20)).isoformat())
    late = api.job(reported_at=(T0 - timedelta(hours=30)).isoformat())
    states = {
        s: [j["id"] for j in api.get("/v1/jobs", params={"sla_state": s}).json()["items"]]
        for s in ("on_track", "at_risk", "breached")
    }
    assert states == {"on_track": [fresh["id"]], "at_risk": [risky["id"]], "breached": [late["id"]]}


def test_jobs_filter_by_status_and_technician(api):
    tech = api.technician()
    a = api.job()
    b = api.job()
    api.post(f"/v1/jobs/{a['id']}/dispatch")
    assigned = api.get("/v1/jobs", params={"status": "assigned"}).json()["items"]
    assert [j["id"] for j in assigned] == [a["id"]]
    waiting = api.get("/v1/jobs", params={"status": ["new", "unable"]}).json()["items"]
    assert [j["id"] for j in waiting] == [b["id"]]
    mine = api.get("/v1/jobs", params={"technician_id": tech["id"]}).json()["items"]
    assert [j["id"] for j in mine] == [a["id"]]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1000}, {"cursor": "not-a-cursor"}, {"sla_state": "late"}, {"status": "done"}]
)
def test_bad_list_parameters_are_422(api, params):
    _problem(api.get("/v1/jobs", params=params), 422)


def test_every_change_is_on_the_timeline_with_device_and_server_time(api):
    tech = api.technician()
    job = api.job(reported_at=(T0 - timedelta(hours=1)).isoformat())
    api.post(f"/v1/jobs/{job['id']}/dispatch")
    device_time = T0 - timedelta(minutes=3)
    api.clock.advance(minutes=10)
    r = api.post(
        f"/v1/jobs/{job['id']}/status",
        {"status": "en_route", "at": device_time.isoformat()},
        headers=api.as_technician(tech["id"]),
    )
    assert r.status_code == 200, r.text
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    assert [e["type"] for e in events] == ["job_created", "dispatched", "status_changed", "visit_started"]
    created, dispatched, moved, _ = events
    assert created["occurred_at"] == (T0 - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert created["recorded_at"] == T0.isoformat().replace("+00:00", "Z")
    assert dispatched["data"]["technician_id"] == tech["id"]
    assert moved["actor"] == f"technician:{tech['id']}"
    assert moved["occurred_at"] == device_time.isoformat().replace("+00:00", "Z")
    assert moved["recorded_at"] == (T0 + timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    assert moved["data"] == {"from": "assigned", "to": "en_route", "technician_id": tech["id"]}


def test_intake_works_out_the_sla_plan_once_and_keeps_its_checkpoints(api, monkeypatch):
    from dispatch.config import Settings
    from dispatch.sla import policies, watcher

    plans = []
    real_plan = policies.plan

    def counted(*args, **kwargs):
        plans.append(kwargs)
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(policies, "plan", counted)
    job = api.job(priority="emergency")
    assert len(plans) == 1
    api.clock.advance(hours=25)
    assert watcher.run_pass(api.database, api.clock.now, Settings()).fired > 0  # its checkpoints were saved
    events = [e["type"] for e in api.get(f"/v1/jobs/{job['id']}/events").json()["items"]]
    assert "sla_breached" in events
