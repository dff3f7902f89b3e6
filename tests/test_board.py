"""The dispatcher's board: jobs in the order a dispatcher works them (breached first,
emergencies first, then the deadline the countdown shows), and a queue of its own for jobs that
wait for a person rather than for the next automatic step."""

from datetime import timedelta

from support.api import job_body
from support.moments import T0


def _ago(hours: float) -> str:
    return (T0 - timedelta(hours=hours)).isoformat()


def test_the_board_is_sorted_by_the_next_deadline_breached_and_emergencies_first(api):
    # The review's board: sorted by the completion deadline, the 2-hour express job sat last
    # under jobs with 23 h left, and a breached emergency was fourth.
    fresh = api.job(customer={"name": "Fresh, 24 h left"})
    older = api.job(customer={"name": "23 h left"}, reported_at=_ago(1))
    express = api.job(customer={"name": "Express, on site within 2 h"}, service_tier="express")
    emergency = api.job(customer={"name": "Emergency, 1 h late"}, priority="emergency", reported_at=_ago(3))
    late = api.job(customer={"name": "Standard, 1 h late"}, reported_at=_ago(25))
    emergency_ok = api.job(customer={"name": "Emergency, 1 h 30 left"}, priority="emergency", reported_at=_ago(0.5))

    by_due = [j["id"] for j in api.get("/v1/jobs").json()["items"]]
    assert by_due[-1] == express["id"]  # what the review saw: 2 hours left, and last

    r = api.get("/v1/jobs", params={"order": "urgency"})
    assert r.status_code == 200, r.text
    board = r.json()["items"]
    assert [j["id"] for j in board] == [
        emergency["id"],  # breached, and an emergency
        late["id"],  # breached
        emergency_ok["id"],  # emergencies before everyone else still in time
        express["id"],  # 2 h to the arrival deadline
        older["id"],  # 23 h
        fresh["id"],  # 24 h
    ]
    # The countdown each row shows is to the deadline the board sorts by.
    lefts = [j["sla"]["time_left_seconds"] for j in board[2:]]
    assert lefts == sorted(lefts)


def test_the_board_order_pages_with_a_cursor_and_finished_jobs_come_last(api):
    tech = api.technician(capacity=5)
    done = api.job(customer={"name": "Done"}, reported_at=_ago(2))
    api.post(f"/v1/jobs/{done['id']}/assign", {"technician_id": tech["id"], "reason": "x"})
    phone = api.as_technician(tech["id"])
    for step in ("on_site", "completed"):
        assert api.post(
            f"/v1/jobs/{done['id']}/status", {"status": step, "at": T0.isoformat()}, headers=phone
        ).is_success
    others = [api.job(reported_at=_ago(h)) for h in (30, 3, 1, 5)] + [api.job(priority="emergency")]
    whole = [j["id"] for j in api.get("/v1/jobs", params={"order": "urgency"}).json()["items"]]
    assert whole[-1] == done["id"]
    assert whole[:2] == [others[0]["id"], others[-1]["id"]]  # breached, then the emergency

    walked, cursor = [], None
    while True:
        params = {"order": "urgency", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/v1/jobs", params=params).json()
        walked += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == whole
    r = api.get("/v1/jobs", params={"order": "urgency", "cursor": "bm90LW91cnM"})
    assert r.status_code == 422 and r.json()["code"] == "invalid-cursor"


def test_jobs_that_need_a_human_have_a_queue_of_their_own_with_the_reason(api, settings):
    api.technician(name="Washing machines", capacity=1)
    unplaced = api.post(
        "/v1/jobs", job_body(customer={"lat": None, "lon": None, "address": "Nowhere 1"})
    ).json()  # no geocoder configured: it cannot be placed
    sofa = api.job(product={"category": "sofa"})
    given_back = api.job()
    holder = api.post(f"/v1/jobs/{given_back['id']}/dispatch").json()["technician_id"]
    r = api.post(
        f"/v1/jobs/{given_back['id']}/status",
        {"status": "unable", "at": T0.isoformat(), "note": "van broke down"},
        headers=api.as_technician(holder),
    )
    assert r.status_code == 200, r.text
    waiting = api.job()  # a skilled technician exists: this one just waits for its turn
    settings.auto_dispatch = True
    api.technician(name="Busy", capacity=1)
    api.job(), api.job()  # take both technicians (the one who gave a job back is free again)
    failed = api.job()  # nobody left: auto-dispatch fails
    assert failed["status"] == "new"

    r = api.get("/v1/jobs", params={"needs_attention": "true", "order": "urgency"})
    assert r.status_code == 200, r.text
    queue = {j["id"]: j["attention"] for j in r.json()["items"]}
    assert queue == {
        unplaced["id"]: "no_location",
        sofa["id"]: "no_skilled_technician",
        given_back["id"]: "gave_back",
        failed["id"]: "dispatch_failed",
    }
    rest = api.get("/v1/jobs", params={"needs_attention": "false"}).json()["items"]
    assert waiting["id"] in {j["id"] for j in rest}
    assert not queue.keys() & {j["id"] for j in rest}
    assert all(j["attention"] is None for j in rest)
    # A job's own page says the same.
    assert api.get(f"/v1/jobs/{sofa['id']}").json()["attention"] == "no_skilled_technician"
