"""Keys and roles: who may call what. The matrix is checked against every operation the app
serves (its OpenAPI document, which FastAPI builds from the route table; no route of ours is
hidden from it), so a new route cannot ship without deciding who may use it."""

import pytest

from dispatch.auth.models import Role
from dispatch.auth.service import hash_key

ALL = {r.value for r in Role}
STAFF = {"admin", "dispatcher", "supervisor"}

# (method, path) -> roles that get past the role check. Object-level checks (a technician's
# own jobs, an outlet's own jobs) are tested separately.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/healthz"): {"anyone"},
    ("GET", "/readyz"): {"anyone"},
    ("POST", "/v1/api-keys"): {"admin"},
    ("GET", "/v1/api-keys"): {"admin"},
    ("DELETE", "/v1/api-keys/{key_id}"): {"admin"},
    ("POST", "/v1/api-keys/{key_id}/rotate"): {"admin"},
    ("POST", "/v1/api-keys/current/rotate"): ALL,  # a key replaces itself
    ("POST", "/v1/outlets"): {"admin"},
    ("GET", "/v1/outlets"): STAFF,
    ("GET", "/v1/outlets/{outlet_id}"): STAFF,
    ("POST", "/v1/technicians"): {"admin", "dispatcher"},
    ("GET", "/v1/technicians"): STAFF,
    ("GET", "/v1/technicians/{technician_id}"): STAFF | {"technician"},
    ("PATCH", "/v1/technicians/{technician_id}"): {"admin", "dispatcher"},
    ("POST", "/v1/technicians/{technician_id}/location"): {"admin", "dispatcher", "technician"},
    ("POST", "/v1/jobs"): {"admin", "dispatcher", "outlet"},
    ("GET", "/v1/jobs"): ALL,
    ("GET", "/v1/jobs/{job_id}"): ALL,
    ("GET", "/v1/jobs/{job_id}/events"): ALL,
    ("POST", "/v1/jobs/{job_id}/status"): STAFF | {"technician"},
    ("POST", "/v1/jobs/{job_id}/location"): {"admin", "dispatcher"},
    ("POST", "/v1/jobs/{job_id}/dispatch"): STAFF,
    ("POST", "/v1/jobs/{job_id}/assign"): STAFF,
    ("POST", "/v1/jobs/{job_id}/parts"): STAFF | {"technician"},
    ("GET", "/v1/jobs/{job_id}/parts"): ALL,
    ("POST", "/v1/jobs/{job_id}/parts/{line_id}/release"): STAFF | {"technician"},
    ("POST", "/v1/jobs/{job_id}/parts/{line_id}/return"): {"admin", "dispatcher", "technician", "warehouse"},
    ("POST", "/v1/locations"): {"admin", "warehouse"},
    ("GET", "/v1/locations"): STAFF | {"warehouse"},
    ("GET", "/v1/locations/{code}"): STAFF | {"warehouse"},
    ("GET", "/v1/locations/{code}/stock"): STAFF | {"warehouse"},
    ("GET", "/v1/locations/{code}/stock/{sku}"): STAFF | {"warehouse"},
    ("PUT", "/v1/locations/{code}/stock/{sku}"): {"admin", "warehouse"},
    ("GET", "/v1/locations/{code}/stock/{sku}/movements"): STAFF | {"warehouse"},
    ("POST", "/v1/locations/{code}/receipts"): {"admin", "warehouse"},
    ("POST", "/v1/parts"): {"admin", "warehouse"},
    ("GET", "/v1/parts"): STAFF | {"warehouse", "technician"},
    ("GET", "/v1/parts/{sku}"): STAFF | {"warehouse", "technician"},
    ("GET", "/v1/parts/{sku}/availability"): STAFF | {"warehouse", "technician"},
    ("POST", "/v1/shipments"): {"admin", "warehouse"},
    ("GET", "/v1/shipments"): STAFF | {"warehouse"},
    ("GET", "/v1/shipments/{shipment_id}"): STAFF | {"warehouse"},
    ("POST", "/v1/shipments/{shipment_id}/receive"): {"admin", "warehouse"},
    ("GET", "/v1/backorders"): STAFF | {"warehouse"},
    ("GET", "/v1/sla/policies"): STAFF,
    ("PUT", "/v1/sla/policies/{name}"): {"admin"},
    ("GET", "/v1/sla/at-risk"): STAFF | {"technician", "outlet"},
    ("GET", "/v1/sla/escalations"): STAFF,
    ("POST", "/v1/sla/escalations/{escalation_id}/acknowledge"): STAFF,
    ("POST", "/v1/jobs/{job_id}/sla/pause"): STAFF,
    ("POST", "/v1/jobs/{job_id}/sla/resume"): STAFF,
    ("GET", "/v1/metrics"): STAFF,
    # Proof of work (issue 5)
    ("GET", "/v1/jobs/{job_id}/visits"): ALL,
    ("POST", "/v1/jobs/{job_id}/return-visits"): STAFF,
    ("POST", "/v1/jobs/{job_id}/photos"): {"admin", "technician"},
    ("GET", "/v1/jobs/{job_id}/photos"): STAFF | {"technician"},
    ("GET", "/v1/jobs/{job_id}/photos/{photo_id}"): STAFF | {"technician"},
    ("GET", "/v1/jobs/{job_id}/photos/{photo_id}/image"): STAFF | {"technician"},
    ("GET", "/v1/jobs/{job_id}/photos/{photo_id}/thumbnail"): STAFF | {"technician"},
    ("POST", "/v1/jobs/{job_id}/signoff"): {"admin", "technician"},
    ("POST", "/v1/jobs/{job_id}/callbacks"): STAFF | {"customer_service"},
    ("GET", "/v1/jobs/{job_id}/callbacks"): STAFF | {"customer_service"},
    ("POST", "/v1/jobs/{job_id}/compliance-reviews"): {"admin", "supervisor"},
    ("GET", "/v1/jobs/{job_id}/closeout"): STAFF | {"technician"},
    ("GET", "/v1/callbacks/due"): STAFF | {"customer_service"},
    # Departments and causes (issue 14)
    ("GET", "/v1/departments"): ALL - {"outlet"},
    ("GET", "/v1/departments/{code}"): ALL - {"outlet"},
    ("PUT", "/v1/departments/{code}"): {"admin"},
    ("GET", "/v1/causes"): ALL - {"outlet"},
    ("PUT", "/v1/causes/{code}"): {"admin"},
    ("POST", "/v1/webhooks"): {"admin", "outlet"},
    ("GET", "/v1/webhooks"): {"admin", "outlet"},
    ("GET", "/v1/webhooks/{subscription_id}"): {"admin", "outlet"},
    ("PATCH", "/v1/webhooks/{subscription_id}"): {"admin", "outlet"},
    ("DELETE", "/v1/webhooks/{subscription_id}"): {"admin", "outlet"},
    ("GET", "/v1/webhooks/{subscription_id}/deliveries"): {"admin", "outlet"},
    ("GET", "/v1/webhooks/{subscription_id}/deliveries/{delivery_id}"): {"admin", "outlet"},
    ("POST", "/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver"): {"admin", "outlet"},
}


def _routes(app):
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            yield method.upper(), path


def test_every_route_is_in_the_role_matrix(api):
    served = set(_routes(api.client.app))
    assert served == set(MATRIX), (
        f"routes missing from the matrix: {sorted(served - set(MATRIX))}; stale entries: {sorted(set(MATRIX) - served)}"
    )


def _call(api, method, path, headers):
    url = path.format(
        key_id=1,
        outlet_id=1,
        technician_id=1,
        job_id=1,
        line_id=1,
        shipment_id=1,
        code="C1",
        sku="S1",
        escalation_id=1,
        name="standard",
        photo_id=1,
        subscription_id=1,
        delivery_id=1,
    )
    return api.client.request(method, url, headers=headers, json={} if method in {"POST", "PATCH", "PUT"} else None)


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_roles_outside_the_matrix_are_refused(api, method, path):
    allowed = MATRIX[(method, path)]
    outlet = api.post("/v1/outlets", {"code": "o1", "name": "Outlet"}, who="admin").json()
    tech = api.technician()
    keys = {
        **{role: api.headers(role) for role in ("admin", "dispatcher", "supervisor", "warehouse", "customer_service")},
        "technician": api.as_technician(tech["id"]),
        "outlet": api.as_outlet(outlet["id"]),
    }
    if "anyone" in allowed:
        assert _call(api, method, path, {}).status_code == 200
        return
    r = _call(api, method, path, {})
    assert r.status_code == 401, (method, path, r.status_code)
    assert r.headers["www-authenticate"] == "Bearer"
    for role, headers in keys.items():
        r = _call(api, method, path, headers)
        if role in allowed:
            assert r.status_code not in (401, 403), (role, method, path, r.text)
        else:
            assert r.status_code == 403, (role, method, path, r.status_code, r.text)
            assert r.json()["code"] == "role-not-allowed"


def test_a_wrong_key_is_401_with_a_problem(api):
    r = api.client.get("/v1/jobs", headers={"Authorization": "Bearer dsp_not-a-real-key"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid-api-key"
    r = api.client.get("/v1/jobs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401


def test_keys_are_stored_hashed_and_shown_once(api):
    r = api.post("/v1/api-keys", {"role": "dispatcher", "name": "night shift"}, who="admin")
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["key"]
    assert secret.startswith("dsp_") and len(secret) > 40
    listed = api.get("/v1/api-keys", who="admin").json()["items"]
    assert all("key" not in k for k in listed)
    from sqlalchemy import text

    with api.database.engine.connect() as conn:
        stored = conn.execute(text("SELECT key_hash FROM api_key WHERE id = :id"), {"id": created["id"]}).scalar()
    assert stored == hash_key(secret) and secret not in stored
    assert api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_a_revoked_key_stops_working(api):
    created = api.post("/v1/api-keys", {"role": "dispatcher"}, who="admin").json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert api.client.get("/v1/jobs", headers=headers).status_code == 200
    r = api.client.delete(f"/v1/api-keys/{created['id']}", headers=api.headers("admin"))
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert api.client.get("/v1/jobs", headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"role": "technician"}, "key-binding-required"),
        ({"role": "outlet"}, "key-binding-required"),
        ({"role": "dispatcher", "technician_id": 1}, "key-binding-invalid"),
        ({"role": "root"}, "validation-failed"),
    ],
)
def test_bound_roles_need_exactly_their_binding(api, body, code):
    r = api.post("/v1/api-keys", body, who="admin")
    assert r.status_code == 422 and r.json()["code"] == code


def test_a_key_for_an_unknown_technician_is_404(api):
    r = api.post("/v1/api-keys", {"role": "technician", "technician_id": 42}, who="admin")
    assert r.status_code == 404 and r.json()["code"] == "technician-not-found"


def test_the_admin_key_from_the_environment_works_at_start_up(settings, clock, database):
    from fastapi.testclient import TestClient

    from dispatch.app import create_app

    secret = "bootstrap-admin-key-0123456789"
    settings.admin_key = secret
    for _ in range(2):  # a restart confirms the same key, it does not duplicate it
        with TestClient(create_app(settings, clock=clock, database=database)) as client:
            r = client.post(
                "/v1/outlets",
                json={"code": "o", "name": "O"} if _ == 0 else {"code": "p", "name": "P"},
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert r.status_code == 201, r.text
    with database.engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT count(*) FROM api_key WHERE role = 'admin'")).scalar() == 1


def test_an_outlet_is_created_with_its_key_shown_once(api):
    r = api.post("/v1/outlets", {"code": "shop-7", "name": "Shop 7"}, who="admin")
    assert r.status_code == 201
    outlet = r.json()
    job = api.client.post(
        "/v1/jobs",
        json={
            "customer": {"name": "A", "address": "Street 1", "lat": 52.0, "lon": 21.0},
            "product": {"category": "oven"},
            "fault": "no heat",
        },
        headers={"Authorization": f"Bearer {outlet['api_key']}"},
    )
    assert job.status_code == 201 and job.json()["outlet_id"] == outlet["id"]
    again = api.post("/v1/outlets", {"code": "shop-7", "name": "Shop 7 again"}, who="admin")
    assert again.status_code == 409
    assert "api_key" not in api.get(f"/v1/outlets/{outlet['id']}").json()


def test_a_technician_sees_and_changes_only_their_own_jobs(api):
    mine = api.technician(name="Me", lat=52.2320, lon=21.0070)
    other = api.technician(name="Other", lat=52.40, lon=21.10)
    my_job = api.job()
    api.post(f"/v1/jobs/{my_job['id']}/dispatch")
    their_job = api.job()
    api.post(f"/v1/jobs/{their_job['id']}/dispatch")
    assert api.get(f"/v1/jobs/{their_job['id']}").json()["technician_id"] == other["id"]
    phone = api.as_technician(mine["id"])
    assert [j["id"] for j in api.get("/v1/jobs", headers=phone).json()["items"]] == [my_job["id"]]
    assert api.get(f"/v1/jobs/{their_job['id']}", headers=phone).status_code == 404
    r = api.post(
        f"/v1/jobs/{their_job['id']}/status", {"status": "en_route", "at": "2026-03-10T09:00:00Z"}, headers=phone
    )
    assert r.status_code == 404
    assert api.get(f"/v1/jobs/{their_job['id']}").json()["status"] == "assigned"
    assert api.get(f"/v1/technicians/{other['id']}", headers=phone).status_code == 404
    assert api.get(f"/v1/technicians/{mine['id']}", headers=phone).status_code == 200


# Object-level authorisation on every job-scoped and subscription-scoped route -----------------
# Generated from the route table: a route with {job_id} (or {subscription_id}) in its path is
# called by an outlet and a technician on an object that is not theirs, with a body that would
# be valid, and must answer 404 (the object simply is not there for them) and change nothing.
# A new route needs a valid body here, or this test says so.

AT = "2026-03-10T09:00:00Z"
OBJECT_BODIES: dict[tuple[str, str], dict | None] = {
    ("POST", "/v1/jobs/{job_id}/status"): {"status": "en_route", "at": AT},
    ("POST", "/v1/jobs/{job_id}/location"): {"lat": 52.2, "lon": 21.0},
    ("POST", "/v1/jobs/{job_id}/dispatch"): None,
    ("POST", "/v1/jobs/{job_id}/assign"): {"technician_id": 1, "reason": "closer"},
    ("POST", "/v1/jobs/{job_id}/parts"): {"sku": "BELT-1", "quantity": 1},
    ("POST", "/v1/jobs/{job_id}/parts/{line_id}/release"): None,
    ("POST", "/v1/jobs/{job_id}/parts/{line_id}/return"): {"quantity": 1},
    ("POST", "/v1/jobs/{job_id}/sla/pause"): {"reason": "customer_unreachable"},
    ("POST", "/v1/jobs/{job_id}/sla/resume"): None,
    ("POST", "/v1/jobs/{job_id}/return-visits"): {"reason": "customer_request"},
    ("POST", "/v1/jobs/{job_id}/signoff"): {"signer_name": "Anna", "photo_id": 1},
    ("POST", "/v1/jobs/{job_id}/callbacks"): {"reached": False},
    ("POST", "/v1/jobs/{job_id}/compliance-reviews"): {"passed": True},
    ("POST", "/v1/jobs/{job_id}/photos"): {"file": ("photo.jpg", b"\xff\xd8\xff", "image/jpeg")},  # multipart
    ("PATCH", "/v1/webhooks/{subscription_id}"): {"active": False},
    ("POST", "/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver"): None,
}


def _scoped_routes(app, param):
    return sorted((m, p) for m, p in _routes(app) if "{" + param + "}" in p)


def test_every_job_route_hides_other_outlets_and_technicians_jobs(api):
    """Outlet A and technician T see nothing of outlet B's job, which technician U holds."""
    a = api.post("/v1/outlets", {"code": "shop-a", "name": "A"}, who="admin").json()
    b = api.post("/v1/outlets", {"code": "shop-b", "name": "B"}, who="admin").json()
    mine, other = api.technician(name="T"), api.technician(name="U")
    outlet_a, outlet_b = api.as_outlet(a["id"]), api.as_outlet(b["id"])
    api.post("/v1/jobs", _job(), headers=outlet_a)
    theirs = api.post("/v1/jobs", _job(), headers=outlet_b).json()
    assert (
        api.post(f"/v1/jobs/{theirs['id']}/assign", {"technician_id": other["id"], "reason": "closer"}).status_code
        == 200
    )
    api.post(
        "/v1/parts",
        {"sku": "BELT-1", "name": "Belt", "categories": ["washing machine"], "lead_time_hours": 48},
        who="warehouse",
    )
    line = api.post(f"/v1/jobs/{theirs['id']}/parts", {"sku": "BELT-1", "quantity": 1})
    assert line.status_code == 201, line.text
    before = api.get(f"/v1/jobs/{theirs['id']}").json()
    callers = {"outlet": outlet_a, "technician": api.as_technician(mine["id"])}
    routes = _scoped_routes(api.client.app, "job_id")
    assert len(routes) >= 8
    for method, path in routes:
        if method != "GET":
            assert (method, path) in OBJECT_BODIES, f"add a valid body for {method} {path} to OBJECT_BODIES"
        url = path.format(job_id=theirs["id"], line_id=line.json()["id"], photo_id=1)
        body = OBJECT_BODIES.get((method, path))
        upload = path.endswith("/photos") and method == "POST"
        for role, headers in callers.items():
            if role not in MATRIX[(method, path)]:
                continue  # refused by role (403), tested above
            r = api.client.request(method, url, headers=headers, **({"files": body} if upload else {"json": body}))
            assert r.status_code == 404, (role, method, path, r.status_code, r.text)
    assert api.get(f"/v1/jobs/{theirs['id']}").json() == before
    # Lists hold only the caller's own.
    for headers, expected in ((outlet_a, "outlet_id"), (callers["technician"], "technician_id")):
        items = api.get("/v1/jobs", headers=headers).json()["items"]
        assert theirs["id"] not in [j["id"] for j in items]
    assert api.get("/v1/jobs", params={"outlet_id": b["id"]}, headers=outlet_a).json()["items"] == []


def test_warehouse_staff_see_the_jobs_that_asked_for_parts_and_no_other_customers(api):
    api.post(
        "/v1/parts",
        {"sku": "BELT-1", "name": "Belt", "categories": ["washing machine"], "lead_time_hours": 48},
        who="warehouse",
    )
    needs_a_belt, other = api.job(), api.job()
    assert api.post(f"/v1/jobs/{needs_a_belt['id']}/parts", {"sku": "BELT-1", "quantity": 1}).status_code == 201
    warehouse = api.headers("warehouse")
    assert api.get(f"/v1/jobs/{needs_a_belt['id']}", headers=warehouse).status_code == 200
    assert api.get(f"/v1/jobs/{needs_a_belt['id']}/parts", headers=warehouse).status_code == 200
    for path in ("", "/events", "/parts", "/visits"):
        r = api.get(f"/v1/jobs/{other['id']}{path}", headers=warehouse)
        assert r.status_code == 404, (path, r.text)
    assert [j["id"] for j in api.get("/v1/jobs", headers=warehouse).json()["items"]] == [needs_a_belt["id"]]
    # Dispatchers still see both.
    assert {j["id"] for j in api.get("/v1/jobs").json()["items"]} == {needs_a_belt["id"], other["id"]}


def test_every_subscription_route_hides_other_outlets_subscriptions(api):
    api.client.app.state.settings.webhook_allow_private_urls = False
    a = api.post("/v1/outlets", {"code": "shop-a", "name": "A"}, who="admin").json()
    b = api.post("/v1/outlets", {"code": "shop-b", "name": "B"}, who="admin").json()
    theirs = api.post(
        "/v1/webhooks",
        {"url": "https://b.example/hooks", "event_types": ["job.created"]},
        headers=api.as_outlet(b["id"]),
    ).json()
    api.post("/v1/jobs", _job(), headers=api.as_outlet(b["id"]))
    deliveries = api.get(f"/v1/webhooks/{theirs['id']}/deliveries", headers=api.as_outlet(b["id"])).json()["items"]
    assert len(deliveries) == 1
    routes = _scoped_routes(api.client.app, "subscription_id")
    assert len(routes) >= 6
    for method, path in routes:
        if method not in ("GET", "DELETE"):
            assert (method, path) in OBJECT_BODIES, f"add a valid body for {method} {path} to OBJECT_BODIES"
        url = path.format(subscription_id=theirs["id"], delivery_id=deliveries[0]["id"])
        r = api.client.request(method, url, headers=api.as_outlet(a["id"]), json=OBJECT_BODIES.get((method, path)))
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    assert api.get(f"/v1/webhooks/{theirs['id']}", headers=api.as_outlet(b["id"])).json()["active"] is True
    assert api.get("/v1/webhooks", headers=api.as_outlet(a["id"])).json()["items"] == []


def _job():
    from conftest import job_body

    return job_body()
