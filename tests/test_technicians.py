"""Technicians: who they are, what they repair, where their phone says they are, and whether
they can be sent right now."""

from datetime import UTC, datetime, timedelta

import pytest
from support.moments import T0, iso
from support.problems import assert_problem
from support.workflow import add_outlet

WARSAW_DAY = {"start": "08:00", "end": "16:00", "timezone": "Europe/Warsaw"}


# Creating -------------------------------------------------------------------------------


def test_a_dispatcher_adds_a_technician_with_sensible_defaults(api):
    r = api.post(
        "/v1/technicians",
        {"name": "  Jan Kowalski ", "skills": ["Washing  Machine", "FRIDGE", "fridge"], "lat": 52.2297, "lon": 21.0122},
    )
    assert r.status_code == 201, r.text
    tech = r.json()
    assert tech["name"] == "Jan Kowalski"
    assert tech["skills"] == ["fridge", "washing machine"]  # lower case, single spaces, no duplicates
    assert tech["capacity"] == 3 and tech["open_jobs"] == 0
    assert tech["on_duty"] is True and tech["active"] is True
    assert tech["shift"] is None and tech["home_branch"] is None and tech["phone"] is None
    assert tech["on_shift_now"] is True and tech["available_now"] is True
    assert tech["location_at"] == tech["created_at"] == tech["updated_at"] == iso(T0)
    assert api.get(f"/v1/technicians/{tech['id']}").json() == tech


def test_shift_hours_are_stored_with_their_zone_and_days(api):
    tech = api.technician(
        shift={**WARSAW_DAY, "days": [5, 1, 2, 3, 4, 1]}, home_branch="WAW-1", phone="+48 600 100 200"
    )
    assert tech["shift"] == {"start": "08:00", "end": "16:00", "days": [1, 2, 3, 4, 5], "timezone": "Europe/Warsaw"}
    assert tech["home_branch"] == "WAW-1" and tech["phone"] == "+48 600 100 200"
    every_day = api.technician(shift={"start": "22:00", "end": "06:00"})
    assert every_day["shift"] == {"start": "22:00", "end": "06:00", "days": [1, 2, 3, 4, 5, 6, 7], "timezone": "UTC"}
    to_the_second = api.technician(shift={"start": "07:30:15", "end": "15:30"})
    assert (to_the_second["shift"]["start"], to_the_second["shift"]["end"]) == ("07:30:15", "15:30")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"lat": 91}, ["body", "lat"]),
        ({"lat": -90.5}, ["body", "lat"]),
        ({"lon": 180.01}, ["body", "lon"]),
        ({"lon": "21.0"}, ["body", "lon"]),
        ({"skills": []}, ["body", "skills"]),
        ({"skills": [""]}, ["body", "skills", 0]),
        ({"skills": "fridge"}, ["body", "skills"]),
        ({"capacity": 0}, ["body", "capacity"]),
        ({"capacity": 101}, ["body", "capacity"]),
        ({"capacity": "2"}, ["body", "capacity"]),
        ({"on_duty": "yes"}, ["body", "on_duty"]),
        ({"name": " "}, ["body", "name"]),
        ({"skils": ["fridge"]}, ["body", "skils"]),
        ({"shift": {"start": "08:00", "end": "16:00", "timezone": "Mars/Olympus"}}, ["body", "shift", "timezone"]),
        ({"shift": {"start": "08:00", "end": "16:00", "timezone": "Europe"}}, ["body", "shift", "timezone"]),
        ({"shift": {"start": "08:00", "end": "16:00", "timezone": "../../etc/passwd"}}, ["body", "shift", "timezone"]),
        ({"shift": {"start": "08:00+01:00", "end": "16:00+01:00", "timezone": "Europe/Warsaw"}}, ["body", "shift"]),
        ({"shift": {"start": "25:00", "end": "16:00"}}, ["body", "shift", "start"]),
        ({"shift": {"start": "08:00", "end": "16:00", "days": [0]}}, ["body", "shift", "days", 0]),
        ({"shift": {"start": "08:00", "end": "16:00", "days": []}}, ["body", "shift", "days"]),
        ({"shift": {"start": "08:00"}}, ["body", "shift", "end"]),
    ],
    ids=[
        "lat 91",
        "lat -90.5",
        "lon 180.01",
        "lon as a string",
        "no skills",
        "empty skill",
        "skills not a list",
        "capacity 0",
        "capacity 101",
        "capacity as a string",
        "on_duty as a string",
        "blank name",
        "unknown field",
        "unknown zone",
        "zone that is a tzdata folder",
        "zone that is a path",
        "shift times with an offset",
        "hour 25",
        "weekday 0",
        "no weekdays",
        "shift without an end",
    ],
)
def test_a_bad_technician_is_a_422_that_names_the_field(api, change, where):
    body = {"name": "Tech", "skills": ["fridge"], "lat": 52.2297, "lon": 21.0122, **change}
    problem = assert_problem(api.post("/v1/technicians", body), 422)
    assert problem["code"] == "validation-failed"
    assert any(e["loc"][: len(where)] == where for e in problem["errors"]), problem
    assert api.get("/v1/technicians").json()["items"] == []


def test_name_skills_and_coordinates_are_required(api):
    problem = assert_problem(api.post("/v1/technicians", {}), 422)
    missing = {tuple(e["loc"]) for e in problem["errors"]}
    assert {("body", "name"), ("body", "skills"), ("body", "lat"), ("body", "lon")} <= missing


# Reading and listing --------------------------------------------------------------------


def test_an_unknown_technician_is_a_404_problem(api):
    problem = assert_problem(api.get("/v1/technicians/424242"), 404)
    assert problem["code"] == "technician-not-found"
    assert_problem(api.patch("/v1/technicians/424242", {"name": "X"}), 404)
    assert_problem(api.post("/v1/technicians/424242/location", {"lat": 52.0, "lon": 21.0}), 404)


def test_technicians_are_listed_in_pages(api):
    ids = [api.technician(name=f"Tech {i}")["id"] for i in range(5)]
    page1 = api.get("/v1/technicians", params={"limit": 2}).json()
    page2 = api.get("/v1/technicians", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    page3 = api.get("/v1/technicians", params={"limit": 2, "cursor": page2["next_cursor"]}).json()
    assert [t["id"] for t in page1["items"] + page2["items"] + page3["items"]] == ids
    assert page1["next_cursor"] and page2["next_cursor"] and page3["next_cursor"] is None
    assert api.get("/v1/technicians", params={"limit": 5}).json()["next_cursor"] is None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"cursor": "not-a-cursor"}, {"on_duty": "maybe"}])
def test_bad_list_parameters_are_422(api, params):
    assert_problem(api.get("/v1/technicians", params=params), 422)


def test_technicians_filter_by_skill_and_duty(api):
    washer = api.technician(name="Washer", skills=["washing machine"])
    fridge = api.technician(name="Fridge", skills=["fridge", "oven"])
    both = api.technician(name="Both", skills=["fridge", "washing machine"], on_duty=False)

    def ids(**params):
        r = api.get("/v1/technicians", params=params)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    assert ids(skill="fridge") == [fridge["id"], both["id"]]
    assert ids(skill="  Washing   MACHINE ") == [washer["id"], both["id"]]  # compared like categories
    assert ids(skill="sofa") == []
    assert ids(on_duty="true") == [washer["id"], fridge["id"]]
    assert ids(on_duty="false") == [both["id"]]
    assert ids(skill="fridge", on_duty="true") == [fridge["id"]]
    # Filters and paging together.
    page = api.get("/v1/technicians", params={"skill": "fridge", "limit": 1}).json()
    assert [t["id"] for t in page["items"]] == [fridge["id"]]
    rest = api.get("/v1/technicians", params={"skill": "fridge", "limit": 1, "cursor": page["next_cursor"]}).json()
    assert [t["id"] for t in rest["items"]] == [both["id"]] and rest["next_cursor"] is None


# Changing -------------------------------------------------------------------------------


def test_a_patch_changes_only_what_it_sends(api):
    tech = api.technician(name="Anna", phone="+48 600 000 001", capacity=2, shift=WARSAW_DAY, home_branch="WAW-1")
    api.clock.advance(minutes=5)
    r = api.patch(f"/v1/technicians/{tech['id']}", {"capacity": 4, "on_duty": False})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["capacity"] == 4 and changed["on_duty"] is False
    assert changed["updated_at"] == iso(T0 + timedelta(minutes=5))
    unchanged = {k: v for k, v in changed.items() if k not in {"capacity", "on_duty", "updated_at", "available_now"}}
    assert unchanged == {
        k: v for k, v in tech.items() if k not in {"capacity", "on_duty", "updated_at", "available_now"}
    }
    assert changed["location_at"] == iso(T0)  # not moved
    assert api.get(f"/v1/technicians/{tech['id']}").json() == changed


def test_a_patch_replaces_the_skills(api):
    tech = api.technician(skills=["washing machine", "fridge"])
    r = api.patch(f"/v1/technicians/{tech['id']}", {"skills": ["Oven", "dishwasher"]})
    assert r.status_code == 200, r.text
    assert r.json()["skills"] == ["dishwasher", "oven"]
    assert [t["id"] for t in api.get("/v1/technicians", params={"skill": "oven"}).json()["items"]] == [tech["id"]]
    assert api.get("/v1/technicians", params={"skill": "fridge"}).json()["items"] == []
    assert_problem(api.patch(f"/v1/technicians/{tech['id']}", {"skills": []}), 422)


def test_shift_null_removes_the_shift_hours(api):
    tech = api.technician(shift={"start": "14:00", "end": "22:00", "timezone": "Europe/Warsaw"})
    assert tech["on_shift_now"] is False  # 10:00 in Warsaw
    r = api.patch(f"/v1/technicians/{tech['id']}", {"name": "Renamed"})
    assert r.json()["shift"] == tech["shift"]  # leaving shift out keeps it
    r = api.patch(f"/v1/technicians/{tech['id']}", {"shift": None})
    assert r.status_code == 200, r.text
    assert r.json()["shift"] is None and r.json()["on_shift_now"] is True and r.json()["available_now"] is True
    r = api.patch(f"/v1/technicians/{tech['id']}", {"shift": WARSAW_DAY})
    assert r.json()["shift"]["timezone"] == "Europe/Warsaw" and r.json()["on_shift_now"] is True


def test_a_patch_moves_the_technician(api):
    tech = api.technician(lat=52.40, lon=21.00)
    api.clock.advance(minutes=7)
    r = api.patch(f"/v1/technicians/{tech['id']}", {"lat": 52.1, "lon": 20.9})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["lat"], moved["lon"]) == (52.1, 20.9)
    assert moved["location_at"] == iso(T0 + timedelta(minutes=7))


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"lat": 52.1}, ["body"]),  # lat without lon
        ({"lat": 91, "lon": 21.0}, ["body", "lat"]),
        ({"lon": "21.0", "lat": 52.0}, ["body", "lon"]),
        ({"capacity": 0}, ["body", "capacity"]),
        ({"shift": {"start": "08:00", "end": "16:00", "timezone": "Mars/Olympus"}}, ["body", "shift", "timezone"]),
        ({"id": 5}, ["body", "id"]),
        ({"open_jobs": 0}, ["body", "open_jobs"]),
    ],
)
def test_a_bad_patch_is_a_422_and_changes_nothing(api, body, where):
    tech = api.technician()
    problem = assert_problem(api.patch(f"/v1/technicians/{tech['id']}", body), 422)
    assert any(e["loc"][: len(where)] == where for e in problem["errors"]), problem
    assert api.get(f"/v1/technicians/{tech['id']}").json() == tech


@pytest.mark.parametrize("field", ["name", "capacity", "on_duty", "active"])
def test_null_for_a_required_field_is_a_422_not_a_500(api, field):
    tech = api.technician()
    r = api.patch(f"/v1/technicians/{tech['id']}", {field: None})
    problem = assert_problem(r, 422)
    assert any(e["loc"][:2] == ["body", field] for e in problem.get("errors") or []), problem
    assert api.get(f"/v1/technicians/{tech['id']}").json() == tech


def test_phone_and_home_branch_can_be_cleared_with_null(api):
    tech = api.technician(phone="+48 600 000 001", home_branch="WAW-1")
    r = api.patch(f"/v1/technicians/{tech['id']}", {"phone": None, "home_branch": None})
    assert r.status_code == 200, r.text
    assert r.json()["phone"] is None and r.json()["home_branch"] is None


# Where the phone says the technician is ------------------------------------------------


def test_a_technician_reports_their_own_location(api):
    tech = api.technician(lat=52.40, lon=21.00)
    phone = api.as_technician(tech["id"])
    api.clock.advance(minutes=10)
    fix_time = T0 + timedelta(minutes=9)
    r = api.post(
        f"/v1/technicians/{tech['id']}/location",
        {"lat": 52.25, "lon": 21.05, "at": fix_time.isoformat()},
        headers=phone,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["lat"], body["lon"]) == (52.25, 21.05)
    assert body["location_at"] == iso(fix_time)  # device time of the fix
    assert body["updated_at"] == iso(T0 + timedelta(minutes=10))  # when the server learned it
    # Without `at` the fix is taken as of when it arrived.
    api.clock.advance(minutes=1)
    r = api.post(f"/v1/technicians/{tech['id']}/location", {"lat": 52.26, "lon": 21.06}, headers=phone)
    assert r.status_code == 200 and r.json()["location_at"] == iso(T0 + timedelta(minutes=11))


def test_a_technician_cannot_report_for_someone_else(api):
    me = api.technician(name="Me")
    other = api.technician(name="Other", lat=52.40, lon=21.00)
    r = api.post(
        f"/v1/technicians/{other['id']}/location", {"lat": 52.0, "lon": 20.0}, headers=api.as_technician(me["id"])
    )
    assert_problem(r, 404, "technician-not-found")
    after = api.get(f"/v1/technicians/{other['id']}").json()
    assert (after["lat"], after["lon"]) == (52.40, 21.00)


def test_a_dispatcher_may_place_a_technician_too(api):
    tech = api.technician()
    api.clock.advance(minutes=1)
    r = api.post(f"/v1/technicians/{tech['id']}/location", {"lat": 52.3, "lon": 21.1})
    assert r.status_code == 200 and (r.json()["lat"], r.json()["lon"]) == (52.3, 21.1)


def test_a_late_report_never_overwrites_a_newer_one(api):
    tech = api.technician(lat=52.40, lon=21.00)
    phone = api.as_technician(tech["id"])
    api.clock.advance(minutes=30)
    newer = T0 + timedelta(minutes=20)
    assert (
        api.post(
            f"/v1/technicians/{tech['id']}/location",
            {"lat": 52.25, "lon": 21.05, "at": newer.isoformat()},
            headers=phone,
        ).status_code
        == 200
    )
    # A fix queued offline from earlier arrives afterwards: accepted, but it does not move anyone.
    for late in (T0 + timedelta(minutes=10), newer):
        r = api.post(
            f"/v1/technicians/{tech['id']}/location",
            {"lat": 50.06, "lon": 19.94, "at": late.isoformat()},
            headers=phone,
        )
        assert r.status_code == 200, r.text
        assert (r.json()["lat"], r.json()["lon"]) == (52.25, 21.05)
        assert r.json()["location_at"] == iso(newer)
    after = api.get(f"/v1/technicians/{tech['id']}").json()
    assert (after["lat"], after["lon"]) == (52.25, 21.05)


def test_a_fix_timed_before_the_technician_was_added_is_ignored(api):
    tech = api.technician(lat=52.40, lon=21.00)
    r = api.post(
        f"/v1/technicians/{tech['id']}/location",
        {"lat": 52.25, "lon": 21.05, "at": (T0 - timedelta(minutes=1)).isoformat()},
        headers=api.as_technician(tech["id"]),
    )
    assert r.status_code == 200 and (r.json()["lat"], r.json()["lon"]) == (52.40, 21.00)


def test_a_report_from_the_future_is_refused(api):
    tech = api.technician(lat=52.40, lon=21.00)
    phone = api.as_technician(tech["id"])
    r = api.post(
        f"/v1/technicians/{tech['id']}/location",
        {"lat": 52.25, "lon": 21.05, "at": (T0 + timedelta(seconds=301)).isoformat()},
        headers=phone,
    )
    problem = assert_problem(r, 422)
    assert problem["code"] == "timestamp-in-future"
    assert problem["errors"][0]["loc"] == ["body", "at"]
    assert api.get(f"/v1/technicians/{tech['id']}").json()["lat"] == 52.40
    # A phone clock a little ahead is within the allowed skew.
    r = api.post(
        f"/v1/technicians/{tech['id']}/location",
        {"lat": 52.25, "lon": 21.05, "at": (T0 + timedelta(seconds=300)).isoformat()},
        headers=phone,
    )
    assert r.status_code == 200 and r.json()["lat"] == 52.25


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"lat": 91, "lon": 21.0}, ["body", "lat"]),
        ({"lat": 52.0, "lon": "21.0"}, ["body", "lon"]),
        ({"lat": 52.0}, ["body", "lon"]),
        ({"lat": 52.0, "lon": 21.0, "at": "2026-03-10T09:00:00"}, ["body", "at"]),  # no offset
        ({"lat": 52.0, "lon": 21.0, "speed": 3}, ["body", "speed"]),
    ],
)
def test_a_bad_location_report_is_a_422(api, body, where):
    tech = api.technician()
    problem = assert_problem(
        api.post(f"/v1/technicians/{tech['id']}/location", body, headers=api.as_technician(tech["id"])), 422
    )
    assert any(e["loc"][: len(where)] == where for e in problem["errors"]), problem


# Available right now ------------------------------------------------------------------


def test_on_shift_now_and_available_now_follow_the_clock(api):
    tech = api.technician(shift=WARSAW_DAY)  # T0 is 10:00 in Warsaw, a Tuesday

    def now():
        body = api.get(f"/v1/technicians/{tech['id']}").json()
        return body["on_shift_now"], body["available_now"]

    assert (tech["on_shift_now"], tech["available_now"]) == (True, True)
    api.clock.set(datetime(2026, 3, 10, 14, 59, 59, tzinfo=UTC))  # 15:59:59 in Warsaw
    assert now() == (True, True)
    api.clock.advance(seconds=1)  # 16:00: the shift is over
    assert now() == (False, False)
    listed = api.get("/v1/technicians").json()["items"]
    assert (listed[0]["on_shift_now"], listed[0]["available_now"]) == (False, False)
    api.clock.set(datetime(2026, 3, 11, 7, 0, tzinfo=UTC))  # 08:00 the next morning
    assert now() == (True, True)
    # Summer time: the same shift starts at 06:00 UTC.
    api.clock.set(datetime(2026, 4, 1, 5, 59, tzinfo=UTC))
    assert now() == (False, False)
    api.clock.set(datetime(2026, 4, 1, 6, 0, tzinfo=UTC))
    assert now() == (True, True)


def test_available_now_needs_on_duty_active_and_spare_capacity(api):
    tech = api.technician(capacity=1)
    assert tech["available_now"] is True
    off = api.patch(f"/v1/technicians/{tech['id']}", {"on_duty": False}).json()
    assert off["on_shift_now"] is True and off["available_now"] is False
    api.patch(f"/v1/technicians/{tech['id']}", {"on_duty": True, "active": False})
    assert api.get(f"/v1/technicians/{tech['id']}").json()["available_now"] is False
    api.patch(f"/v1/technicians/{tech['id']}", {"active": True})
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.status_code == 200 and r.json()["technician_id"] == tech["id"]
    busy = api.get(f"/v1/technicians/{tech['id']}").json()
    assert busy["open_jobs"] == 1 and busy["available_now"] is False
    more = api.patch(f"/v1/technicians/{tech['id']}", {"capacity": 2}).json()
    assert more["open_jobs"] == 1 and more["available_now"] is True


# Who may do what -----------------------------------------------------------------------


def test_a_technician_key_sees_only_its_own_technician(api):
    me = api.technician(name="Me")
    other = api.technician(name="Other")
    phone = api.as_technician(me["id"])
    assert api.get(f"/v1/technicians/{me['id']}", headers=phone).json()["name"] == "Me"
    assert_problem(api.get(f"/v1/technicians/{other['id']}", headers=phone), 404, "technician-not-found")


def test_dispatcher_only_routes_are_refused_to_a_technician_key(api):
    me = api.technician()
    phone = api.as_technician(me["id"])
    r = api.patch(f"/v1/technicians/{me['id']}", {"capacity": 100}, headers=phone)
    assert_problem(r, 403, "role-not-allowed")
    r = api.post("/v1/technicians", {"name": "Friend", "skills": ["fridge"], "lat": 52.0, "lon": 21.0}, headers=phone)
    assert_problem(r, 403, "role-not-allowed")
    assert_problem(api.get("/v1/technicians", headers=phone), 403, "role-not-allowed")
    assert api.get(f"/v1/technicians/{me['id']}").json()["capacity"] == 1
    assert len(api.get("/v1/technicians").json()["items"]) == 1


def test_an_outlet_key_cannot_see_or_move_technicians(api):
    tech = api.technician()
    shop = api.as_outlet(add_outlet(api, name="Shop 1")["id"])
    assert_problem(api.get("/v1/technicians", headers=shop), 403, "role-not-allowed")
    assert_problem(api.get(f"/v1/technicians/{tech['id']}", headers=shop), 403)
    assert_problem(api.post(f"/v1/technicians/{tech['id']}/location", {"lat": 50.0, "lon": 19.0}, headers=shop), 403)
    assert_problem(
        api.post("/v1/technicians", {"name": "X", "skills": ["fridge"], "lat": 52.0, "lon": 21.0}, headers=shop), 403
    )


def test_a_supervisor_reads_technicians_but_does_not_change_them(api):
    tech = api.technician()
    assert api.get("/v1/technicians", who="supervisor").status_code == 200
    assert api.get(f"/v1/technicians/{tech['id']}", who="supervisor").status_code == 200
    assert_problem(api.patch(f"/v1/technicians/{tech['id']}", {"capacity": 5}, who="supervisor"), 403)
    assert_problem(
        api.post(f"/v1/technicians/{tech['id']}/location", {"lat": 50.0, "lon": 19.0}, who="supervisor"), 403
    )


# Dispatch follows the technician ------------------------------------------------------


def _two_technicians(api):
    near = api.technician(name="Near", lat=52.235, lon=21.01)  # about 0.45 km from the customer
    far = api.technician(name="Far", lat=52.40, lon=21.00)  # about 19 km away
    return near, far


def test_dispatch_uses_the_position_a_patch_moved_the_technician_to(api):
    near, far = _two_technicians(api)
    r = api.patch(f"/v1/technicians/{far['id']}", {"lat": 52.2320, "lon": 21.0068})
    assert r.status_code == 200, r.text
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.status_code == 200, r.text
    assert r.json()["technician_id"] == far["id"]
    assert r.json()["distance_km"] < 0.05
    distances = {c["technician_id"]: c["distance_km"] for c in r.json()["candidates"]}
    assert distances[near["id"]] == pytest.approx(0.45, abs=0.05)


def test_dispatch_uses_the_position_a_phone_reported(api):
    near, far = _two_technicians(api)
    api.clock.advance(minutes=2)
    r = api.post(
        f"/v1/technicians/{far['id']}/location",
        {"lat": 52.2320, "lon": 21.0068, "at": iso(T0 + timedelta(minutes=1))},
        headers=api.as_technician(far["id"]),
    )
    assert r.status_code == 200, r.text
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.status_code == 200, r.text
    assert r.json()["technician_id"] == far["id"]


def test_dispatch_stops_sending_a_technician_who_moved_away(api):
    near, far = _two_technicians(api)
    # The near one drives to Kraków; the far one is now the nearest.
    api.clock.advance(minutes=2)
    api.post(
        f"/v1/technicians/{near['id']}/location",
        {"lat": 50.0647, "lon": 19.9450},
        headers=api.as_technician(near["id"]),
    )
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.status_code == 200, r.text
    assert r.json()["technician_id"] == far["id"]
    assert r.json()["distance_km"] == pytest.approx(18.6, abs=1)


def test_dispatch_uses_the_new_position_when_skills_and_place_change_together(api):
    near, far = _two_technicians(api)
    api.patch(f"/v1/technicians/{far['id']}", {"skills": ["washing machine", "fridge"], "lat": 52.2320, "lon": 21.0068})
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.status_code == 200 and r.json()["technician_id"] == far["id"]


def test_a_late_report_does_not_move_the_technician_for_dispatch_either(api):
    near, far = _two_technicians(api)
    api.clock.advance(minutes=5)
    phone = api.as_technician(far["id"])
    api.post(
        f"/v1/technicians/{far['id']}/location",
        {"lat": 52.40, "lon": 21.00, "at": iso(T0 + timedelta(minutes=4))},
        headers=phone,
    )
    # An older fix (from when they were next to the customer) arrives late.
    api.post(
        f"/v1/technicians/{far['id']}/location",
        {"lat": 52.2320, "lon": 21.0068, "at": iso(T0 + timedelta(minutes=3))},
        headers=phone,
    )
    r = api.post(f"/v1/jobs/{api.job()['id']}/dispatch")
    assert r.status_code == 200 and r.json()["technician_id"] == near["id"]


# Two dispatchers editing one technician (RFC 9110 conditional requests) ----------------------


def test_two_dispatchers_editing_one_technician_cannot_undo_each_others_change(api):
    tech = api.technician(capacity=2)
    read = api.get(f"/v1/technicians/{tech['id']}")
    etag = read.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    anna = {**api.headers("dispatcher"), "If-Match": etag}
    first = api.patch(f"/v1/technicians/{tech['id']}", {"capacity": 3}, headers=anna)
    assert first.status_code == 200, first.text
    assert first.headers["etag"] != etag
    late = api.patch(f"/v1/technicians/{tech['id']}", {"capacity": 1}, headers=anna)  # Bob read the same version
    assert late.status_code == 412, late.text
    assert late.headers["content-type"].startswith("application/problem+json")
    assert late.json()["code"] == "precondition-failed" and late.json()["current_etag"] == first.headers["etag"]
    assert api.get(f"/v1/technicians/{tech['id']}").json()["capacity"] == 3
    # Read again, change again.
    again = {**api.headers("dispatcher"), "If-Match": api.get(f"/v1/technicians/{tech['id']}").headers["etag"]}
    assert api.patch(f"/v1/technicians/{tech['id']}", {"capacity": 1}, headers=again).status_code == 200


def test_the_phone_reporting_its_location_does_not_make_a_dispatchers_edit_stale(api):
    tech = api.technician()
    etag = api.get(f"/v1/technicians/{tech['id']}").headers["etag"]
    phone = api.as_technician(tech["id"])
    api.clock.advance(minutes=1)
    assert (
        api.post(f"/v1/technicians/{tech['id']}/location", {"lat": 52.25, "lon": 21.0}, headers=phone).status_code
        == 200
    )
    r = api.patch(
        f"/v1/technicians/{tech['id']}", {"on_duty": False}, headers={**api.headers("dispatcher"), "If-Match": etag}
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("if_match", ['"not-the-version"', 'W/"{etag}"', "{etag}", '"", ""'])
def test_an_if_match_that_is_not_the_current_strong_etag_is_refused(api, if_match):
    tech = api.technician()
    etag = api.get(f"/v1/technicians/{tech['id']}").headers["etag"]
    header = if_match.format(etag=etag.strip('"')) if "{etag}" in if_match else if_match
    r = api.patch(
        f"/v1/technicians/{tech['id']}", {"capacity": 9}, headers={**api.headers("dispatcher"), "If-Match": header}
    )
    assert r.status_code == 412, r.text
    assert api.get(f"/v1/technicians/{tech['id']}").json()["capacity"] == tech["capacity"]


def test_if_match_star_or_one_of_several_tags_lets_the_edit_through(api):
    tech = api.technician()
    etag = api.get(f"/v1/technicians/{tech['id']}").headers["etag"]
    r = api.patch(
        f"/v1/technicians/{tech['id']}",
        {"name": "Renamed once"},
        headers={**api.headers("dispatcher"), "If-Match": "*"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["etag"] != etag
    r = api.patch(
        f"/v1/technicians/{tech['id']}",
        {"name": "Renamed twice"},
        headers={**api.headers("dispatcher"), "If-Match": f'"old", {r.headers["etag"]}'},
    )
    assert r.status_code == 200, r.text
    assert api.get(f"/v1/technicians/{tech['id']}").json()["name"] == "Renamed twice"
