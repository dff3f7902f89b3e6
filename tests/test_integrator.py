"""What an outlet's developer meets: docs that work without internet, a page behind every
problem `type`, every webhook's payload described in the spec (and deliveries that match it),
who is coming and when, and a warning when a job will never go ahead by itself."""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest
from support.moments import T0
from support.receiver import Receiver

from dispatch.errors import PROBLEM_TYPES
from dispatch.webhooks.catalogue import WEBHOOK_TYPES
from dispatch.webhooks.payloads import DELIVERIES
from dispatch.webhooks.worker import Worker

SRC = Path(__file__).resolve().parent.parent / "src" / "dispatch"


# /docs -------------------------------------------------------------------------------------


def test_the_interactive_docs_load_every_script_and_style_from_the_service_itself(api):
    page = api.client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert assets, page.text
    for url in assets:
        assert url.startswith("/"), f"{url} is loaded from elsewhere: blank without internet"
        r = api.client.get(url)
        assert r.status_code == 200, url
    assert any(url.endswith("swagger-ui-bundle.js") for url in assets)
    assert api.client.get("/openapi.json").status_code == 200


# Problem types -----------------------------------------------------------------------------


def test_a_problems_type_uri_is_a_page_that_says_what_it_means(api):
    problem = api.post("/v1/jobs", {"customer": {}}).json()
    assert problem["type"] == "/problems/validation-failed"
    page = api.client.get(problem["type"])
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "<code>validation-failed</code>" in page.text and "errors" in page.text
    missing = api.get("/v1/jobs/4242").json()
    assert api.client.get(missing["type"]).status_code == 200
    index = api.client.get("/problems")
    assert index.status_code == 200 and 'href="/problems/job-not-found"' in index.text
    unknown = api.client.get("/problems/no-such-problem")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not-found"


def _codes_in_source() -> dict[str, str]:
    """Every stable code the service can answer with, read from the source: `code="…"` given to
    an error class, `problem_response` or `send_problem`, `code = "…"` in an error class, `"code": "…"` in a
    problem body, `PROBLEM_TYPE_BASE + "…"`, and the codes the idempotency middleware sends."""
    found: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                raises = name[:1].isupper() or name in (
                    "problem_response",
                    "send_problem",
                )  # an error class, or a problem
                for kw in node.keywords:
                    if raises and kw.arg == "code" and isinstance(kw.value, ast.Constant):
                        found.setdefault(kw.value.value, where)
                if name == "_problem":
                    for arg in node.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and " " not in arg.value:
                            found.setdefault(arg.value, where)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "code" and isinstance(value, ast.Constant):
                        found.setdefault(value.value, where)
            elif isinstance(node, ast.BinOp) and isinstance(node.left, ast.Name):
                if node.left.id == "PROBLEM_TYPE_BASE" and isinstance(node.right, ast.Constant):
                    found.setdefault(node.right.value, where)
            elif isinstance(node, ast.Assign) and isinstance(node.value, (ast.Tuple, ast.Constant)):
                for target in node.targets:
                    names = (
                        [e.id for e in target.elts if isinstance(e, ast.Name)] if isinstance(target, ast.Tuple) else []
                    )
                    if isinstance(target, ast.Name):
                        names = [target.id]
                    values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                    if "code" in names and len(values) == len(names):
                        value = values[names.index("code")]
                        if isinstance(value, ast.Constant) and isinstance(value.value, str):
                            found.setdefault(value.value, where)
    return found


def test_every_code_the_service_answers_with_has_a_page(api):
    from dispatch.errors import _HTTP_CODES

    codes = _codes_in_source() | {code: "errors._HTTP_CODES" for code, _ in _HTTP_CODES.values()}
    assert len(codes) > 80  # the scan found the service's codes
    unlisted = {code: where for code, where in codes.items() if code not in PROBLEM_TYPES}
    assert unlisted == {}, "add these to errors.PROBLEM_TYPES"
    for code in ("job-not-found", "idempotency-key-reused", "no-technician-available", "unknown-category"):
        assert api.client.get(f"/problems/{code}").status_code == 200


# Webhooks in the spec, and deliveries that match it -----------------------------------------


def test_the_spec_describes_every_webhook_events_payload(api):
    spec = api.client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["webhooks"]) == set(WEBHOOK_TYPES)
    for event_type, item in spec["webhooks"].items():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        name = body["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
        assert schema["properties"]["type"]["const" if "const" in schema["properties"]["type"] else "enum"] in (
            event_type,
            [event_type],
        )
    assigned = spec["components"]["schemas"]["AssignedData"]["properties"]
    assert {"technician_first_name", "arrival_window"} <= assigned.keys()


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _outlet(api):
    outlet = api.post("/v1/outlets", {"code": "shop-42", "name": "Shop 42"}, who="admin").json()
    return outlet, {"Authorization": f"Bearer {outlet['api_key']}"}


def test_the_shop_hears_who_is_coming_and_when_and_every_delivery_matches_its_schema(api, settings, receiver):
    settings.webhook_allow_private_urls = True
    _, shop = _outlet(api)
    r = api.post("/v1/webhooks", {"url": receiver.url, "event_types": list(WEBHOOK_TYPES)}, headers=shop)
    assert r.status_code == 201, r.text
    api.technician(name="Anna Maria Nowak", lat=52.2320, lon=21.0070, capacity=2)
    window = {"start": (T0 + timedelta(hours=3)).isoformat(), "end": (T0 + timedelta(hours=5)).isoformat()}
    booked = api.job(headers=shop, appointment=window, external_ref="58213")
    express = api.job(headers=shop, service_tier="express", external_ref="58214")
    for job in (booked, express):
        assert api.post(f"/v1/jobs/{job['id']}/dispatch").status_code == 200

    # The shop's own view of the job: the first name and the window, nothing more.
    seen = api.get(f"/v1/jobs/{booked['id']}", headers=shop).json()["arrival"]
    assert seen == {
        "technician_first_name": "Anna",
        "window_start": window["start"].replace("+00:00", "Z"),
        "window_end": window["end"].replace("+00:00", "Z"),
        "basis": "appointment",
    }
    seen = api.get(f"/v1/jobs/{express['id']}", headers=shop).json()["arrival"]
    assert (seen["technician_first_name"], seen["basis"]) == ("Anna", "deadline")
    assert seen["window_end"] == express["sla"]["next_due_at"]  # on site within 2 hours

    worker = Worker(database=api.database, settings=settings, clock=api.clock)
    try:
        worker.drain()
    finally:
        worker.close()
    payloads = [item.payload for item in receiver.accepted]
    assert [p["type"] for p in payloads].count("job.assigned") == 2
    for payload in payloads:
        DELIVERIES[payload["type"]].model_validate(payload)  # unknown or missing fields fail
    assigned = {p["data"]["external_ref"]: p["data"]["event"]["data"] for p in payloads if p["type"] == "job.assigned"}
    assert assigned["58213"]["technician_first_name"] == "Anna"
    assert assigned["58213"]["arrival_window"] == {
        "start": window["start"],
        "end": window["end"],
        "basis": "appointment",
    }
    assert assigned["58214"]["arrival_window"]["basis"] == "deadline"
    assert all("Nowak" not in item.body.decode() for item in receiver.accepted)


# An unknown category ---------------------------------------------------------------------------


def test_a_job_for_a_category_nobody_repairs_is_accepted_with_a_warning(api):
    api.technician(skills=["washing machine"])
    r = api.post(
        "/v1/jobs",
        {
            "customer": {"name": "Jan", "address": "Puławska 1, Warszawa", "lat": 52.2, "lon": 21.02},
            "product": {"category": "washing machin"},  # a typo
            "fault": "Leaks water",
        },
    )
    assert r.status_code == 201, r.text
    [warning] = r.json()["warnings"]
    assert warning["code"] == "unknown-category" and "washing machin" in warning["detail"]
    assert api.job()["warnings"] == []  # a category somebody repairs: no warning
