"""Paging (dispatch/paging.py): every list pages through one kit, and a cursor is good only for
the list that gave it out. Anything else, forged or borrowed, is a 422 ``invalid-cursor``."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime

import pytest

from dispatch.errors import Unprocessable
from dispatch.paging import Keyset
from dispatch.schemas import Id, Timestamp

JOBS = Keyset("jobs", Timestamp, Id)


def forged(*parts: object) -> str:
    """A cursor in our wire format (base64url JSON: the list's name, then its key), made by hand."""
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def refused(keyset: Keyset, cursor: str) -> bool:
    with pytest.raises(Unprocessable) as caught:
        keyset.decode(cursor)
    return caught.value.code == "invalid-cursor" and caught.value.status == 422


def test_a_cursor_gives_back_the_key_it_was_made_of():
    due = datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=UTC)
    cursor = JOBS.encode((due, 42))
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)  # safe in a URL as it is
    assert JOBS.decode(cursor) == (due, 42)
    assert JOBS.decode(None) is None


@pytest.mark.parametrize(
    "cursor",
    [
        forged("technicians", 42),  # another list's
        forged("jobs", "2026-03-10T12:00:00Z", 99999999999999999999),  # an id no row can have
        forged("jobs", "2026-03-10T12:00:00Z", "42"),  # a string where the id goes
        forged("jobs", "2026-03-10T12:00:00", 42),  # a naive instant
        forged("jobs", "0001-01-01T00:00:00+05:00", 1),  # instants at the calendar's edges
        forged("jobs", "9999-12-31T23:59:00-05:00", 1),
        forged("jobs", "2026-03-10T12:00:00Z"),  # a key cut short
        forged("jobs", "2026-03-10T12:00:00Z", 42, 7),  # and one too long
        forged({"jobs": 42}),
        "not-a-cursor",
        "bm90LWEtY3Vyc29y",  # base64 of "not-a-cursor"
        "żółw",
        "",
    ],
)
def test_a_cursor_this_list_never_gave_out_is_422(cursor):
    assert refused(JOBS, cursor)


def test_cutting_a_page_keeps_limit_rows_and_says_where_the_next_begins():
    class Row:
        def __init__(self, id: int) -> None:
            self.id = id

    ids = Keyset("things", Id)
    page = ids.cut([Row(1), Row(2), Row(3)], 2)  # fetched with limit + 1
    assert [r.id for r in page.items] == [1, 2] and ids.decode(page.next_cursor) == (2,)
    last = ids.cut([Row(3)], 2)
    assert [r.id for r in last.items] == [3] and last.next_cursor is None


def lists_with_cursors(api) -> list[str]:
    spec = api.client.app.openapi()
    return sorted(
        path
        for path, operations in spec["paths"].items()
        if any(p["name"] == "cursor" for p in operations.get("get", {}).get("parameters", []))
    )


def test_every_list_refuses_a_cursor_of_another_list(api):
    # One of everything, so that every list's path points at something that exists.
    api.technician(name="First")
    api.technician(name="Second")
    job, _ = api.job(), api.job()
    location = {"code": "WAW-C", "name": "Warsaw Centre", "kind": "branch", "lat": 52.235, "lon": 21.01}
    assert api.post("/v1/locations", location, who="warehouse").status_code == 201
    part = {"sku": "BELT-1200", "name": "Drum belt", "categories": ["washing machine"], "lead_time_hours": 72}
    assert api.post("/v1/parts", part, who="warehouse").status_code == 201
    outlet = api.post("/v1/outlets", {"code": "mediamax", "name": "MediaMax"}, who="admin").json()
    webhook = api.post(
        "/v1/webhooks",
        {"url": "https://example.com/hooks", "event_types": ["job.created"]},
        headers=api.as_outlet(outlet["id"]),
    ).json()
    ids = {
        "{job_id}": str(job["id"]),
        "{code}": "WAW-C",
        "{sku}": "BELT-1200",
        "{subscription_id}": str(webhook["id"]),
    }
    technicians = api.get("/v1/technicians", params={"limit": 1}).json()["next_cursor"]
    jobs = api.get("/v1/jobs", params={"limit": 1}).json()["next_cursor"]
    assert technicians and jobs

    paths = lists_with_cursors(api)
    assert len(paths) >= 16 and "/v1/locations/{code}/stock/{sku}/movements" in paths  # found them all
    for template in paths:
        path = template
        for name, value in ids.items():
            path = path.replace(name, value)
        assert "{" not in path, template
        assert api.get(path, who="admin").status_code == 200, template
        borrowed = jobs if template == "/v1/technicians" else technicians
        r = api.get(path, who="admin", params={"cursor": borrowed})
        assert (r.status_code, r.json().get("code")) == (422, "invalid-cursor"), template


def test_a_cursor_always_fits_the_cursor_parameter(api):
    """The longest key a list sorts on is a metrics group: 64 characters, up to four bytes each."""
    for category in ("𝔸" * 64, "𝔹" * 64):
        api.job(product={"category": category})
    first = api.get("/v1/metrics", who="supervisor", params={"group_by": "category", "limit": 1}).json()
    assert first["rows"][0]["group"] == "𝔸" * 64 and first["next_cursor"]
    params = {"group_by": "category", "limit": 1, "cursor": first["next_cursor"]}
    second = api.get("/v1/metrics", who="supervisor", params=params)
    assert second.status_code == 200, second.text
    assert second.json()["rows"][0]["group"] == "𝔹" * 64 and second.json()["next_cursor"] is None
