"""Departments, the stages of a job they answer for, and the causes a wait is charged to."""

from __future__ import annotations


def _departments(api, who="dispatcher"):
    r = api.get("/v1/departments", who=who)
    assert r.status_code == 200, r.text
    return {d["code"]: d for d in r.json()["items"]}


def test_a_fresh_service_centre_has_the_departments_of_the_brief_each_stage_owned_once(api):
    departments = _departments(api)
    assert set(departments) == {
        "customer_service",
        "dispatch",
        "warehouse",
        "logistics",
        "field",
        "quality",
        "supplier",
    }
    owners = {stage: code for code, d in departments.items() for stage in d["stages"]}
    assert owners == {
        "dispatch": "dispatch",
        "central_warehouse": "warehouse",
        "shipment": "logistics",
        "field": "field",
        "callback": "customer_service",
    }
    assert departments["warehouse"]["stages"]["central_warehouse"] == 8 * 60
    assert departments["dispatch"]["stages"]["dispatch"] == 30


def test_an_admin_moves_a_stage_to_another_department_and_retargets_it(api):
    r = api.client.put(
        "/v1/departments/quality",
        json={"name": "Quality assurance", "reply_target_minutes": 240, "stages": {"callback": 12 * 60}},
        headers=api.headers("admin"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["stages"] == {"callback": 720} and r.json()["updated_by"].startswith("admin:")
    departments = _departments(api)
    assert departments["customer_service"]["stages"] == {}
    assert departments["quality"]["name"] == "Quality assurance"


def test_a_stage_cannot_be_left_without_an_owner(api):
    r = api.client.put(
        "/v1/departments/warehouse",
        json={"name": "Warehouse", "reply_target_minutes": 240, "stages": {}},
        headers=api.headers("admin"),
    )
    assert r.status_code == 409 and r.json()["code"] == "stage-would-be-unowned"
    r = api.client.put(
        "/v1/departments/warehouse",
        json={"name": "Warehouse", "reply_target_minutes": 240, "active": False},
        headers=api.headers("admin"),
    )
    assert r.status_code == 409 and r.json()["code"] == "department-owns-stages"
    assert _departments(api)["warehouse"]["stages"] == {"central_warehouse": 480}


def test_a_new_department_can_be_added_and_named_by_a_cause(api):
    r = api.client.put(
        "/v1/departments/production",
        json={"name": "Production", "reply_target_minutes": 480},
        headers=api.headers("admin"),
    )
    assert r.status_code == 200 and r.json()["stages"] == {}
    r = api.client.put(
        "/v1/causes/batch_defect",
        json={"label": "A whole production batch is faulty", "department": "production"},
        headers=api.headers("admin"),
    )
    assert r.status_code == 200, r.text
    causes = {c["code"]: c for c in api.get("/v1/causes").json()["items"]}
    assert causes["batch_defect"]["department"] == "production"
    assert causes["part_late"]["department"] == "warehouse" and causes["customer_absent"]["department"] is None


def test_a_cause_retired_by_an_admin_leaves_the_catalogue_but_not_history(api):
    r = api.client.put(
        "/v1/causes/wrong_part",
        json={"label": "Wrong part", "department": "warehouse", "active": False},
        headers=api.headers("admin"),
    )
    assert r.status_code == 200
    assert "wrong_part" not in {c["code"] for c in api.get("/v1/causes").json()["items"]}
    retired = {c["code"]: c for c in api.get("/v1/causes?include_inactive=true").json()["items"]}["wrong_part"]
    assert retired["active"] is False


def test_bad_department_and_cause_edits_are_4xx_and_change_nothing(api):
    admin = api.headers("admin")
    cases = [
        ("/v1/departments/Bad-Code", {"name": "x", "reply_target_minutes": 10}, 422),
        ("/v1/departments/field", {"name": "Field", "reply_target_minutes": 0}, 422),
        ("/v1/departments/field", {"name": "Field", "reply_target_minutes": "60"}, 422),
        ("/v1/departments/field", {"name": "Field", "reply_target_minutes": 60, "stages": {"lunch": 5}}, 422),
        ("/v1/departments/field", {"name": "Field", "reply_target_minutes": 60, "stages": {"field": 10**9}}, 422),
        ("/v1/causes/x_y", {"label": "x", "department": "nowhere"}, 422),
    ]
    before = _departments(api)
    for path, body, status in cases:
        r = api.client.put(path, json=body, headers=admin)
        assert r.status_code == status, (path, body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert _departments(api) == before
    r = api.client.put("/v1/causes/x_y", json={"label": "x", "department": "nowhere"}, headers=admin)
    assert r.json()["code"] == "unknown-department"
    assert api.get("/v1/departments/nowhere").status_code == 404


def test_customer_service_staff_read_departments_and_outlets_do_not(api):
    assert api.get("/v1/departments", who="customer_service").status_code == 200
    outlet = api.post("/v1/outlets", {"code": "shop-1", "name": "Shop"}, who="admin").json()
    assert api.client.get("/v1/departments", headers=api.as_outlet(outlet["id"])).status_code == 403
    r = api.client.put(
        "/v1/departments/field", json={"name": "F", "reply_target_minutes": 5}, headers=api.headers("supervisor")
    )
    assert r.status_code == 403
