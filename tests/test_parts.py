"""Parts that drive the job: a part is reserved from the best place, shipped, or backordered;
the job waits and says until when; goods received go to the most urgent job first; when the
parts are in, the technician is sent back. Every stock change is in the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from support.moments import T0, iso
from support.parts import BELT, CENTRAL, NEAR_BRANCH, ask, set_stock, set_up_stockroom, stock_of
from support.problems import assert_problem
from support.workflow import event_types, events_of, on_site_job, tap

from dispatch.parts.models import Stock


@pytest.fixture
def stockroom(api):
    """A central warehouse, two branches and one part in the catalogue, no stock yet."""
    return set_up_stockroom(api)


# Setting up the stockroom ----------------------------------------------------------------------


def test_warehouse_staff_keep_locations_a_catalogue_and_counted_stock(stockroom):
    api = stockroom
    assert [loc["code"] for loc in api.get("/v1/locations").json()["items"]] == ["CENTRAL", "WAW-C", "WAW-S"]
    assert api.get("/v1/locations/WAW-S").json()["delivery_hours"] == 6
    assert api.get("/v1/locations/WAW-C").json()["delivery_hours"] == 8  # the settings' default
    part = api.get("/v1/parts/BELT-1200").json()
    assert part["categories"] == ["washing machine"]
    assert [p["sku"] for p in api.get("/v1/parts", params={"category": "washing machine"}).json()["items"]] == [
        "BELT-1200"
    ]
    assert api.get("/v1/parts", params={"category": "fridge"}).json()["items"] == []

    assert set_stock(api, "WAW-C", 5) | {"updated_at": None} == {
        "location": "WAW-C",
        "sku": "BELT-1200",
        "on_hand": 5,
        "reserved": 0,
        "available": 5,
        "updated_at": None,
    }
    set_stock(api, "WAW-C", 3)
    ledger = api.get("/v1/locations/WAW-C/stock/BELT-1200/movements").json()["items"]
    assert [(m["reason"], m["on_hand_change"], m["note"]) for m in ledger] == [
        ("counted", 5, "count"),
        ("counted", -2, "count"),
    ]
    assert all(m["actor"].startswith("warehouse") for m in ledger)


def test_a_count_made_before_goods_came_in_is_refused_instead_of_undoing_the_receipt(stockroom):
    api = stockroom
    set_stock(api, "WAW-C", 10)
    counted = api.get("/v1/locations/WAW-C/stock/BELT-1200", who="warehouse")
    etag = counted.headers["etag"]
    # Meanwhile a delivery of 5 is booked in at the other desk.
    assert (
        api.post("/v1/locations/WAW-C/receipts", {"sku": "BELT-1200", "quantity": 5}, who="warehouse").status_code
        == 201
    )
    stale = api.put(
        "/v1/locations/WAW-C/stock/BELT-1200",
        {"on_hand": 9, "note": "shelf count"},
        headers={**api.headers("warehouse"), "If-Match": etag},
    )
    assert_problem(stale, 412, "precondition-failed")
    assert stock_of(api, "WAW-C")["on_hand"] == 15
    fresh = api.get("/v1/locations/WAW-C/stock/BELT-1200", who="warehouse").headers["etag"]
    ok = api.put(
        "/v1/locations/WAW-C/stock/BELT-1200",
        {"on_hand": 14, "note": "recount"},
        headers={**api.headers("warehouse"), "If-Match": fresh},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["on_hand"] == 14 and ok.headers["etag"] not in (etag, fresh)
    # Without If-Match a count still goes through, as before (the header is opt-in).
    assert set_stock(api, "WAW-C", 12)["on_hand"] == 12


def test_a_reservation_does_not_make_a_count_stale(stockroom):
    api = stockroom
    set_stock(api, "WAW-S", 3)
    etag = api.get("/v1/locations/WAW-S/stock/BELT-1200", who="warehouse").headers["etag"]
    tech, job, phone = on_site_job(api, home_branch="WAW-S")
    assert ask(api, job["id"], headers=phone).json()["state"] == "reserved"
    r = api.put(
        "/v1/locations/WAW-S/stock/BELT-1200",
        {"on_hand": 4, "note": "found one"},
        headers={**api.headers("warehouse"), "If-Match": etag},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["on_hand"], r.json()["reserved"]) == (4, 1)


def test_there_is_one_central_warehouse_and_codes_and_skus_are_unique(stockroom):
    api = stockroom
    second = {**CENTRAL, "code": "CENTRAL-2"}
    assert api.post("/v1/locations", second, who="warehouse").json()["code"] == "central-exists"
    assert api.post("/v1/locations", NEAR_BRANCH, who="warehouse").json()["code"] == "duplicate-location"
    assert api.post("/v1/parts", BELT, who="warehouse").json()["code"] == "duplicate-sku"


# Where a part comes from -----------------------------------------------------------------------


def test_a_part_in_the_technicians_own_branch_is_reserved_there_and_the_visit_goes_on(stockroom):
    api = stockroom
    set_stock(api, "WAW-C", 5)  # nearer the customer
    set_stock(api, "WAW-S", 5)  # but the technician works from here
    tech, job, phone = on_site_job(api, home_branch="WAW-S")
    r = ask(api, job["id"], 2, headers=phone)
    assert r.status_code == 201, r.text
    line = r.json()
    assert (line["state"], line["location"], line["eta"]) == ("reserved", "WAW-S", None)
    assert r.headers["location"] == f"/v1/jobs/{job['id']}/parts/{line['id']}"
    assert stock_of(api, "WAW-S") | {"updated_at": None} == {
        "location": "WAW-S",
        "sku": "BELT-1200",
        "on_hand": 5,
        "reserved": 2,
        "available": 3,
        "updated_at": None,
    }
    after = api.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == "on_site" and after["waiting_for_parts"] == [] and after["parts_eta"] is None
    ledger = api.get("/v1/locations/WAW-S/stock/BELT-1200/movements").json()["items"]
    assert (ledger[-1]["reason"], ledger[-1]["reserved_change"], ledger[-1]["job_id"]) == ("reserved", 2, job["id"])
    assert ledger[-1]["actor"].startswith("technician")


def test_without_a_home_branch_the_branch_nearest_the_customer_is_used(stockroom):
    api = stockroom
    set_stock(api, "WAW-S", 5)
    set_stock(api, "WAW-C", 5)
    _, job, phone = on_site_job(api)
    assert ask(api, job["id"], headers=phone).json()["location"] == "WAW-C"
    availability = api.get("/v1/parts/BELT-1200/availability", params={"job_id": job["id"]}).json()["items"]
    assert [(a["location"], a["available"]) for a in availability] == [("WAW-C", 4), ("WAW-S", 5)]
    assert availability[0]["distance_km"] < availability[1]["distance_km"]


def test_availability_near_a_point_given_as_lat_and_lon_in_the_query_string(stockroom):
    # Query strings are text: a strict float type made every lat/lon a 422 (found by schemathesis).
    api = stockroom
    set_stock(api, "WAW-S", 5)
    set_stock(api, "WAW-C", 5)
    r = api.get("/v1/parts/BELT-1200/availability", params={"lat": "52.2350", "lon": "21.0100"})
    assert r.status_code == 200, r.text
    assert [a["location"] for a in r.json()["items"]] == ["WAW-C", "WAW-S"]
    assert r.json()["items"][0]["distance_km"] == 0
    for bad in ({"lat": "91", "lon": "21"}, {"lat": "nan", "lon": "21"}, {"lat": "52", "lon": "east"}):
        r = api.get("/v1/parts/BELT-1200/availability", params=bad)
        assert r.status_code == 422 and r.json()["errors"], (bad, r.text)
    r = api.get("/v1/parts/BELT-1200/availability", params={"lat": "52.2"})
    assert r.status_code == 422 and r.json()["code"] == "invalid-position"


def test_only_the_central_warehouse_has_it_so_it_ships_to_the_branch_and_the_technician_comes_back(stockroom):
    api = stockroom
    set_stock(api, "CENTRAL", 4)
    tech, job, phone = on_site_job(api, home_branch="WAW-S")
    line = ask(api, job["id"], headers=phone).json()
    assert (line["state"], line["location"]) == ("in_transit", "WAW-S")
    assert line["eta"] == iso(T0 + timedelta(hours=6))  # WAW-S's delivery time
    assert stock_of(api, "CENTRAL")["on_hand"] == 3

    waiting = api.get(f"/v1/jobs/{job['id']}").json()
    assert waiting["status"] == "waiting_parts"
    assert waiting["technician_id"] == tech["id"]  # still theirs, to be sent back
    assert waiting["waiting_for_parts"] == [
        {"sku": "BELT-1200", "quantity": 1, "state": "in_transit", "eta": iso(T0 + timedelta(hours=6))}
    ]
    assert waiting["parts_eta"] == iso(T0 + timedelta(hours=6))
    assert waiting["sla"]["predicted_breach"] is None  # six hours is well inside the 24
    assert api.get(f"/v1/technicians/{tech['id']}").json()["open_jobs"] == 0  # free for other work meanwhile
    assert [j["id"] for j in api.get("/v1/jobs", headers=phone).json()["items"]] == [job["id"]]

    shipments = api.get("/v1/shipments", params={"status": "in_transit"}).json()["items"]
    assert [(s["from_location"], s["to_location"], s["job_id"]) for s in shipments] == [("CENTRAL", "WAW-S", job["id"])]
    api.clock.advance(hours=5)
    r = api.post(f"/v1/shipments/{line['shipment_id']}/receive", who="warehouse")
    assert r.status_code == 200, r.text
    assert (
        api.post(f"/v1/shipments/{line['shipment_id']}/receive", who="warehouse").json()["code"] == "shipment-received"
    )

    back = api.get(f"/v1/jobs/{job['id']}").json()
    assert (back["status"], back["technician_id"], back["waiting_for_parts"]) == ("assigned", tech["id"], [])
    assert stock_of(api, "WAW-S")["reserved"] == 1
    steps = [(e["type"], e["data"].get("to")) for e in events_of(api, job)]
    assert steps == [
        ("job_created", None),
        ("dispatched", None),
        ("status_changed", "on_site"),
        ("visit_started", None),
        ("parts_in_transit", None),
        ("status_changed", "waiting_parts"),
        ("visit_ended", None),
        ("parts_arrived", None),
        ("sent_back", None),
    ]
    [sent_back] = events_of(api, job, "sent_back")
    assert sent_back["data"]["technician_id"] == tech["id"] and sent_back["data"]["continuity"] is True


def test_a_part_nobody_has_is_backordered_with_the_parts_lead_time(stockroom):
    api = stockroom
    _, job, phone = on_site_job(api)
    line = ask(api, job["id"], headers=phone).json()
    assert (line["state"], line["location"]) == ("backordered", None)
    assert line["eta"] == iso(T0 + timedelta(hours=72))
    backorders = api.get("/v1/backorders", params={"sku": "BELT-1200"}).json()["items"]
    assert [(b["job_id"], b["quantity"]) for b in backorders] == [(job["id"], 1)]


def test_a_supplier_delivery_on_its_way_gives_the_backorder_its_eta(stockroom):
    api = stockroom
    eta = T0 + timedelta(hours=10)
    r = api.post(
        "/v1/shipments", {"sku": "BELT-1200", "quantity": 2, "to_location": "WAW-C", "eta": iso(eta)}, who="warehouse"
    )
    assert r.status_code == 201, r.text
    _, first, _ = on_site_job(api, capacity=3)
    second = api.job()
    third = api.job()
    assert ask(api, first["id"]).json()["eta"] == iso(eta)
    assert ask(api, second["id"]).json()["eta"] == iso(eta)
    assert ask(api, third["id"]).json()["eta"] == iso(T0 + timedelta(hours=72))  # the delivery is spoken for


# Predicted breaches ----------------------------------------------------------------------------


def test_a_part_that_comes_after_the_deadline_flags_the_breach_at_once(stockroom):
    api = stockroom
    _, job, phone = on_site_job(api)
    ask(api, job["id"], headers=phone)  # backordered: 72 h lead time, the job is due in 24 h
    now = api.get(f"/v1/jobs/{job['id']}").json()
    assert now["sla"]["state"] == "at_risk"
    assert now["sla"]["predicted_breach"] == "parts_eta_after_due"
    at_risk = api.get("/v1/jobs", params={"sla_state": "at_risk"}).json()["items"]
    assert [j["id"] for j in at_risk] == [job["id"]]
    assert api.get("/v1/jobs", params={"sla_state": "on_track"}).json()["items"] == []
    predicted = events_of(api, job, "breach_predicted")
    assert len(predicted) == 1
    assert predicted[0]["data"]["parts_eta"] == (T0 + timedelta(hours=72)).isoformat()


# Goods received ------------------------------------------------------------------------------


def test_goods_received_go_to_the_most_urgent_job_first_not_the_first_to_ask(stockroom):
    api = stockroom
    api.technician(capacity=5)
    relaxed = api.job()  # reported now: due in 24 h
    urgent = api.job(reported_at=iso(T0 - timedelta(hours=20)))  # due in 4 h
    ask(api, relaxed["id"], 2)
    ask(api, urgent["id"], 2)  # asked second
    r = api.post("/v1/locations/WAW-C/receipts", {"sku": "BELT-1200", "quantity": 3}, who="warehouse")
    assert r.status_code == 201, r.text
    assert (r.json()["backorders_filled"], r.json()["quantity_to_backorders"]) == (2, 3)

    def lines(job):
        return sorted((p["state"], p["quantity"]) for p in api.get(f"/v1/jobs/{job['id']}/parts").json()["items"])

    assert lines(urgent) == [("reserved", 2)]
    assert lines(relaxed) == [("backordered", 1), ("reserved", 1)]  # split: one now, one still owed
    assert stock_of(api, "WAW-C") | {"updated_at": None} == {
        "location": "WAW-C",
        "sku": "BELT-1200",
        "on_hand": 3,
        "reserved": 3,
        "available": 0,
        "updated_at": None,
    }
    assert api.get(f"/v1/jobs/{urgent['id']}").json()["status"] == "assigned"  # parts in: someone goes
    assert api.get(f"/v1/jobs/{relaxed['id']}").json()["status"] == "waiting_parts"


def test_a_backordered_part_that_arrives_sends_the_same_technician_back(stockroom):
    api = stockroom
    tech, job, phone = on_site_job(api)
    ask(api, job["id"], headers=phone)
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "waiting_parts"
    api.clock.advance(hours=2)
    api.post("/v1/locations/WAW-C/receipts", {"sku": "BELT-1200", "quantity": 1}, who="warehouse")
    back = api.get(f"/v1/jobs/{job['id']}").json()
    assert (back["status"], back["technician_id"]) == ("assigned", tech["id"])
    assert back["sla"]["predicted_breach"] is None and back["sla"]["state"] == "on_track"
    types = event_types(api, job)
    assert types.index("parts_backordered") < types.index("breach_predicted") < types.index("parts_arrived")
    assert types.index("parts_arrived") < types.index("breach_no_longer_predicted") < types.index("sent_back")
    assert tap(api, job, "en_route", phone=phone)["status"] == "en_route"


def test_when_their_technician_is_busy_the_nearest_available_one_goes_instead(stockroom):
    api = stockroom
    first, job, phone = on_site_job(api)
    ask(api, job["id"], headers=phone)
    other = api.job()
    assert api.post(f"/v1/jobs/{other['id']}/dispatch").json()["technician_id"] == first["id"]  # their slot is used
    second = api.technician(lat=52.20, lon=21.00)
    api.post("/v1/locations/WAW-C/receipts", {"sku": "BELT-1200", "quantity": 1}, who="warehouse")
    back = api.get(f"/v1/jobs/{job['id']}").json()
    assert (back["status"], back["technician_id"]) == ("assigned", second["id"])
    sent = events_of(api, job, "sent_back")[0]["data"]
    assert (sent["continuity"], sent["previous_technician_id"]) == (False, first["id"])


def test_when_nobody_can_go_the_job_is_ready_for_a_dispatcher(stockroom):
    api = stockroom
    first, job, phone = on_site_job(api)
    ask(api, job["id"], headers=phone)
    api.patch(f"/v1/technicians/{first['id']}", {"on_duty": False})
    api.post("/v1/locations/WAW-C/receipts", {"sku": "BELT-1200", "quantity": 1}, who="warehouse")
    ready = api.get(f"/v1/jobs/{job['id']}").json()
    assert (ready["status"], ready["technician_id"]) == ("ready", None)
    api.patch(f"/v1/technicians/{first['id']}", {"on_duty": True})
    assert api.post(f"/v1/jobs/{job['id']}/dispatch").json()["technician_id"] == first["id"]


# The job ends --------------------------------------------------------------------------------


def test_cancelling_a_job_gives_its_parts_back_to_the_next_job_waiting(stockroom):
    api = stockroom
    set_stock(api, "WAW-C", 1)
    api.technician(capacity=3)
    holder, waiter = api.job(), api.job()
    assert ask(api, holder["id"]).json()["state"] == "reserved"
    assert ask(api, waiter["id"]).json()["state"] == "backordered"
    tap(api, holder, "cancelled")  # by the dispatcher
    assert [p["state"] for p in api.get(f"/v1/jobs/{holder['id']}/parts").json()["items"]] == ["released"]
    assert [p["state"] for p in api.get(f"/v1/jobs/{waiter['id']}/parts").json()["items"]] == ["reserved"]
    assert stock_of(api, "WAW-C")["reserved"] == 1
    reasons = [m["reason"] for m in api.get("/v1/locations/WAW-C/stock/BELT-1200/movements").json()["items"]]
    assert reasons == ["counted", "reserved", "released", "reserved"]


def test_completing_a_job_uses_its_parts_and_unused_ones_go_back_on_the_shelf(stockroom):
    api = stockroom
    set_stock(api, "WAW-C", 5)
    _, job, phone = on_site_job(api)
    line = ask(api, job["id"], 3, headers=phone).json()
    tap(api, job, "completed", phone=phone)
    assert api.get(f"/v1/jobs/{job['id']}/parts").json()["items"][0]["state"] == "consumed"
    assert (stock_of(api, "WAW-C")["on_hand"], stock_of(api, "WAW-C")["reserved"]) == (2, 0)
    r = api.post(f"/v1/jobs/{job['id']}/parts/{line['id']}/return", {"quantity": 1}, headers=phone)
    assert r.status_code == 200, r.text
    assert r.json()["returned"] == 1
    assert stock_of(api, "WAW-C")["on_hand"] == 3
    too_many = api.post(f"/v1/jobs/{job['id']}/parts/{line['id']}/return", {"quantity": 3}, headers=phone)
    assert_problem(too_many, 422, "return-too-many")
    assert "parts_returned" in event_types(api, job)


def test_a_part_not_needed_after_all_is_released_and_the_job_goes_back_out(stockroom):
    api = stockroom
    tech, job, phone = on_site_job(api)
    line = ask(api, job["id"], headers=phone).json()
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "waiting_parts"
    r = api.post(f"/v1/jobs/{job['id']}/parts/{line['id']}/release", headers=phone)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "released"
    after = api.get(f"/v1/jobs/{job['id']}").json()
    assert (after["status"], after["technician_id"]) == ("assigned", tech["id"])
    again = api.post(f"/v1/jobs/{job['id']}/parts/{line['id']}/release", headers=phone)
    assert_problem(again, 409, "part-line-closed")


# Bad input and the rules in the database --------------------------------------------------------


def test_stock_cannot_be_counted_below_what_jobs_hold(stockroom):
    api = stockroom
    set_stock(api, "WAW-C", 2)
    job = api.job()
    ask(api, job["id"], 2)
    r = api.put("/v1/locations/WAW-C/stock/BELT-1200", {"on_hand": 1}, who="warehouse")
    assert assert_problem(r, 409, "below-reserved")["reserved"] == 2
    assert stock_of(api, "WAW-C")["on_hand"] == 2


@pytest.mark.parametrize("quantity", [0, -1, "2", 1.5, True, 10**9, None])
def test_quantities_are_positive_whole_numbers(stockroom, quantity):
    api = stockroom
    job = api.job()
    r = api.post(f"/v1/jobs/{job['id']}/parts", {"sku": "BELT-1200", "quantity": quantity})
    assert r.status_code == 422, r.text
    assert ["body", "quantity"] in [e["loc"][:2] for e in r.json()["errors"]]
    receipt = api.post("/v1/locations/WAW-C/receipts", {"sku": "BELT-1200", "quantity": quantity}, who="warehouse")
    assert receipt.status_code == 422
    assert api.get(f"/v1/jobs/{job['id']}/parts").json()["items"] == []


def test_unknown_skus_and_locations_are_clear_problems(stockroom):
    api = stockroom
    job = api.job()
    r = ask(api, job["id"], sku="NO-SUCH")
    assert assert_problem(r, 422, "unknown-sku")["errors"][0]["loc"] == ["body", "sku"]
    assert api.get("/v1/parts/NO-SUCH").json()["code"] == "part-not-found"
    assert api.get("/v1/locations/NOWHERE/stock/BELT-1200").status_code == 404
    r = api.post("/v1/locations/NOWHERE/receipts", {"sku": "BELT-1200", "quantity": 1}, who="warehouse")
    assert_problem(r, 404, "location-not-found")
    r = api.post(
        "/v1/shipments",
        {
            "sku": "BELT-1200",
            "quantity": 1,
            "from_location": "WAW-C",
            "to_location": "NOWHERE",
            "eta": iso(T0 + timedelta(hours=1)),
        },
        who="warehouse",
    )
    assert (r.status_code, r.json()["errors"][0]["loc"]) == (422, ["body", "to_location"])
    r = api.post(
        "/v1/shipments",
        {
            "sku": "BELT-1200",
            "quantity": 1,
            "from_location": "WAW-C",
            "to_location": "WAW-S",
            "eta": iso(T0 + timedelta(hours=1)),
        },
        who="warehouse",
    )
    assert_problem(r, 409, "insufficient-stock")
    assert api.get("/v1/shipments").json()["items"] == []  # the refused shipment left nothing behind


def test_a_technician_cannot_order_parts_on_someone_elses_job(stockroom):
    api = stockroom
    _, job, _ = on_site_job(api)
    stranger = api.as_technician(api.technician(name="Other")["id"])
    assert ask(api, job["id"], headers=stranger).status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}/parts", headers=stranger).status_code == 404


def test_a_closed_job_needs_no_more_parts(stockroom):
    api = stockroom
    _, job, phone = on_site_job(api)
    tap(api, job, "completed", phone=phone)
    r = ask(api, job["id"])
    assert_problem(r, 409, "job-closed")


def test_the_database_itself_refuses_reserving_more_than_is_on_hand(stockroom):
    api = stockroom
    set_stock(api, "WAW-C", 2)
    with pytest.raises(IntegrityError), api.database.transaction() as session:
        session.execute(update(Stock).values(reserved=3))
    with pytest.raises(IntegrityError), api.database.transaction() as session:
        session.execute(update(Stock).values(on_hand=-1, reserved=0))
    with api.database.transaction(write=False) as session:
        assert session.execute(select(Stock.on_hand, Stock.reserved)).one() == (2, 0)
        assert session.execute(text("SELECT count(*) FROM stock_movement")).scalar() == 1


def test_a_part_that_arrives_never_sends_back_the_technician_who_gave_the_job_back(stockroom):
    api = stockroom
    gave_back, job, phone = on_site_job(api)
    tap(api, job["id"], "unable", phone=phone, note="the van broke down")
    other = api.technician(lat=52.20, lon=21.00)  # further from the customer
    assert ask(api, job["id"]).status_code == 201  # the dispatcher orders the part meanwhile
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "waiting_parts"
    api.post("/v1/locations/WAW-C/receipts", {"sku": "BELT-1200", "quantity": 1}, who="warehouse")
    back = api.get(f"/v1/jobs/{job['id']}").json()
    assert (back["status"], back["technician_id"]) == ("assigned", other["id"])
    assert gave_back["id"] != other["id"]
