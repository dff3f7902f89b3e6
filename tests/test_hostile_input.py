"""What a buggy integration or a hostile client sends gets a clear 4xx, never a 500."""

import pytest
from conftest import job_body


@pytest.mark.parametrize("path", ["/v1/jobs/99999999999999999999", "/v1/jobs/0", "/v1/jobs/-1", "/v1/jobs/abc"])
def test_ids_out_of_range_are_422(api, path):
    r = api.get(path)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation-failed"


def test_an_id_filter_out_of_range_is_422(api):
    assert api.get("/v1/jobs", params={"technician_id": 2**40}).status_code == 422


def test_an_assignment_to_a_huge_technician_id_is_422(api):
    job = api.job()
    r = api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": 2**63, "reason": "x"})
    assert r.status_code == 422


def test_nul_characters_in_text_are_refused(api):
    r = api.post("/v1/jobs", job_body(fault="leaks\x00water"))
    assert r.status_code == 422
    r = api.get("/v1/jobs", params={"category": "oven\x00"})
    assert r.status_code == 422
    r = api.get("/v1/technicians", params={"home_branch": "\x00"})
    assert r.status_code == 422


def _cursor(*key: object) -> str:
    """A cursor in the API's wire format (base64url JSON of the list's name and key), forged."""
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def test_a_forged_cursor_is_422(api):
    forged = _cursor("technicians", 99999999999999999999)
    assert api.get("/v1/technicians", params={"cursor": forged}).status_code == 422
    forged = _cursor("jobs", "2026-01-01T00:00:00+00:00", 99999999999999999999)
    assert api.get("/v1/jobs", params={"cursor": forged}).status_code == 422


def test_a_body_over_the_limit_is_413_whether_declared_or_not(api):
    big = b'{"fault": "' + b"x" * 300_000 + b'"}'
    r = api.client.post(
        "/v1/jobs", content=big, headers={**api.headers("dispatcher"), "content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["code"] == "too-large"

    def chunks():
        for _ in range(40):
            yield b"x" * 10_000

    r = api.client.post(
        "/v1/jobs", content=chunks(), headers={**api.headers("dispatcher"), "content-type": "application/json"}
    )
    assert r.status_code == 413


def test_not_json_at_all_is_422(api):
    r = api.client.post(
        "/v1/jobs",
        content=b"customer=1",
        headers={**api.headers("dispatcher"), "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422


def test_nan_is_not_a_coordinate(api):
    body = b'{"customer": {"name": "A", "address": "Street 1", "lat": NaN, "lon": 21.0}, "product": {"category": "oven"}, "fault": "x"}'
    r = api.client.post(
        "/v1/jobs", content=body, headers={**api.headers("dispatcher"), "content-type": "application/json"}
    )
    assert r.status_code == 422


def test_an_unknown_route_and_a_wrong_method_are_problems(api):
    r = api.get("/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = api.client.put("/v1/jobs", headers=api.headers("dispatcher"))
    assert r.status_code == 405 and r.json()["code"] == "method-not-allowed"


def test_a_timestamp_must_be_text_not_epoch_seconds(api):
    tech = api.technician()
    r = api.post(f"/v1/technicians/{tech['id']}/location", {"lat": 52.0, "lon": 21.0, "at": 0})
    assert r.status_code == 422
    assert api.post("/v1/jobs", job_body(reported_at=1_700_000_000)).status_code == 422


def test_patch_refuses_null_for_fields_that_cannot_be_empty(api):
    tech = api.technician(phone="+48 600 000 000")
    for field in ("active", "name", "skills", "capacity", "on_duty"):
        r = api.patch(f"/v1/technicians/{tech['id']}", {field: None})
        assert r.status_code == 422, (field, r.text)
    # ...while fields that may be cleared are cleared.
    r = api.patch(f"/v1/technicians/{tech['id']}", {"phone": None})
    assert r.status_code == 200 and r.json()["phone"] is None


def test_shift_times_are_wall_clock_times_without_an_offset(api):
    for bad in ("08:00+02:00", "8am", "24:00", 800):
        body = {
            "name": "T",
            "skills": ["oven"],
            "lat": 52.0,
            "lon": 21.0,
            "shift": {"start": bad, "end": "16:00", "timezone": "Europe/Warsaw"},
        }
        assert api.post("/v1/technicians", body).status_code == 422, bad


def test_numbers_must_be_numbers(api):
    job = api.job()
    r = api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": "1", "reason": "x"})
    assert r.status_code == 422
    r = api.post("/v1/technicians", {"name": "T", "skills": ["oven"], "lat": 52.0, "lon": 21.0, "capacity": True})
    assert r.status_code == 422


@pytest.mark.parametrize("moment", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "1970-01-01T00:00:00Z"])
def test_timestamps_at_the_calendars_edges_are_422_not_an_overflow(api, moment):
    r = api.post("/v1/jobs", job_body(reported_at=moment))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "reported_at"]
    r = api.post("/v1/jobs", job_body(appointment={"start": moment, "end": "2026-03-10T12:00:00Z"}))
    assert r.status_code == 422, r.text
    tech, job = api.technician(), api.job()
    api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "x"})
    r = api.post(
        f"/v1/jobs/{job['id']}/status", {"status": "en_route", "at": moment}, headers=api.as_technician(tech["id"])
    )
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:00-05:00"])
def test_a_cursor_with_an_instant_at_the_calendars_edge_is_422(api, instant):
    assert api.get("/v1/jobs", params={"cursor": _cursor("jobs", instant, 1)}).status_code == 422
    assert api.get("/v1/sla/at-risk", params={"cursor": _cursor("at-risk", 1, instant, 1)}).status_code == 422


def test_a_category_that_grows_when_lower_cased_still_fits_its_column(api):
    r = api.post("/v1/jobs", job_body(product={"category": "İ" * 64}))  # 64 characters, 128 lower-cased
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "product", "category"]
    assert (
        api.post(
            "/v1/technicians", {"name": "T", "skills": ["İ" * 32], "lat": 52.2, "lon": 21.0, "capacity": 1}
        ).status_code
        == 201
    )
