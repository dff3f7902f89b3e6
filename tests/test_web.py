"""The console and the technician app are served by the API's own process, with safe headers,
and the job list has the filters the console's board needs (search, branch)."""

from __future__ import annotations

import pytest
from support.api import job_body
from support.workflow import add_outlet


@pytest.mark.parametrize("page", ["/console/", "/tech/"])
def test_each_app_shell_is_served_with_a_content_security_policy(api, page):
    r = api.client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<main" in r.text


@pytest.mark.parametrize("bare, target", [("/console", "/console/"), ("/tech", "/tech/")])
def test_the_bare_path_redirects_to_the_app(api, bare, target):
    r = api.client.get(bare, follow_redirects=False)
    assert r.status_code == 308
    assert r.headers["location"] == target


def test_the_technician_app_is_installable(api):
    manifest = api.client.get("/tech/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    assert manifest.json()["start_url"] == "/tech/"
    for icon in manifest.json()["icons"]:
        assert api.client.get(icon["src"]).status_code == 200, icon
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest.json()["icons"]}
    worker = api.client.get("/tech/sw.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")


def test_the_pages_are_not_part_of_the_api_contract(api):
    paths = api.client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/console", "/tech", "/ui")) for p in paths)


def test_a_missing_file_is_404(api):
    assert api.client.get("/ui/nothing-here.js").status_code == 404
    assert api.client.get("/tech/../../pyproject.toml").status_code == 404


def test_the_board_finds_a_job_by_part_of_the_customers_phone_whatever_the_spacing(api):
    wanted = api.job(customer={"phone": "+48 22 555-01-77"})
    api.job(customer={"phone": "+48 22 999 00 11"})
    for typed in ("555 0177", "225550177", "555-01-77"):
        found = api.get("/v1/jobs", params={"q": typed}).json()["items"]
        assert [j["id"] for j in found] == [wanted["id"]], typed


def test_the_board_finds_a_job_by_the_outlets_order_number(api):
    outlet = add_outlet(api, "shop-1", "Shop 1")
    wanted = api.job(headers=api.as_outlet(outlet["id"]), external_ref="ORD-7_1")
    api.job(headers=api.as_outlet(outlet["id"]), external_ref="ORD-701")
    found = api.get("/v1/jobs", params={"q": "ORD-7_1"}).json()["items"]
    assert [j["id"] for j in found] == [wanted["id"]]


def test_like_wildcards_in_the_search_match_only_themselves(api):
    api.job(customer={"phone": "+48 22 555 01 00"})
    assert api.get("/v1/jobs", params={"q": "%%%"}).json()["items"] == []
    assert api.get("/v1/jobs", params={"q": "5_5"}).json()["items"] == []


def test_the_board_filters_by_the_assigned_technicians_branch(api):
    north = api.technician(home_branch="WAW-N", capacity=5)
    api.technician(home_branch="WAW-S", lat=52.16, lon=21.03, capacity=5)
    near_north = api.job()
    api.post(f"/v1/jobs/{near_north['id']}/assign", {"technician_id": north["id"], "reason": "regular"})
    unassigned = api.job()
    found = api.get("/v1/jobs", params={"branch": "WAW-N"}).json()["items"]
    assert [j["id"] for j in found] == [near_north["id"]]
    assert unassigned["id"] not in {j["id"] for j in api.get("/v1/jobs", params={"branch": "WAW-S"}).json()["items"]}


@pytest.mark.parametrize("params", [{"q": ""}, {"q": "x" * 101}, {"q": "a\x00b"}, {"branch": ""}, {"branch": "\x00"}])
def test_bad_search_parameters_are_422(api, params):
    assert api.get("/v1/jobs", params=params).status_code == 422


def test_a_technician_searching_sees_only_their_own_jobs(api):
    tech = api.technician()
    api.post("/v1/jobs", job_body(customer={"phone": "+48 600 100 200"}))
    found = api.get("/v1/jobs", params={"q": "600100200"}, headers=api.as_technician(tech["id"])).json()["items"]
    assert found == []
