"""Idempotency-Key on every write: a retry gets the first answer, never a second job.

RELIABILITY.md, "Idempotency": the first response (status and body) is replayed for the same
key; the same key with a different body is refused (422, code ``idempotency-key-reused``); a
retry while the first is still running is 409 (``idempotency-key-in-use``); keys are scoped
to the caller and purged after ``DISPATCH_IDEMPOTENCY_KEY_HOURS``.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

from conftest import job_body
from proof import CUSTOMER, good_photo, image_bytes, on_site, stored_files, upload
from sqlalchemy import func, select
from test_races import run_together

from dispatch.idempotency import fingerprints
from dispatch.idempotency import service as idempotency
from dispatch.idempotency.models import IdempotencyKey
from dispatch.jobs.models import Job
from dispatch.photos.models import Photo


def _jobs(api) -> int:
    with api.database.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(Job))


def _keys(api) -> int:
    with api.database.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(IdempotencyKey))


def _with_key(api, key: str, who: str = "dispatcher") -> dict[str, str]:
    return {**api.headers(who), "Idempotency-Key": key}


def test_a_retried_intake_gets_the_first_answer_and_makes_one_job(api):
    first = api.post("/v1/jobs", job_body(external_ref="A-1"), headers=_with_key(api, "order-A-1"))
    assert first.status_code == 201, first.text
    api.clock.advance(minutes=5)
    again = api.post("/v1/jobs", job_body(external_ref="A-1"), headers=_with_key(api, "order-A-1"))
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _jobs(api) == 1


def test_the_same_key_with_a_different_body_is_refused(api):
    assert api.post("/v1/jobs", job_body(fault="Leaks"), headers=_with_key(api, "k1")).status_code == 201
    r = api.post("/v1/jobs", job_body(fault="Does not start"), headers=_with_key(api, "k1"))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "idempotency-key-reused"
    r = api.post(
        "/v1/technicians",
        {"name": "T", "skills": ["tv"], "lat": 52.0, "lon": 21.0, "capacity": 1},
        headers=_with_key(api, "k1"),
    )
    assert r.status_code == 422 and r.json()["code"] == "idempotency-key-reused"  # another path is another request
    assert _jobs(api) == 1


def test_keys_belong_to_their_caller(api):
    a = api.post("/v1/outlets", {"code": "shop-a", "name": "A"}, who="admin").json()
    b = api.post("/v1/outlets", {"code": "shop-b", "name": "B"}, who="admin").json()
    ra = api.post("/v1/jobs", job_body(), headers={**api.as_outlet(a["id"]), "Idempotency-Key": "same"})
    rb = api.post("/v1/jobs", job_body(), headers={**api.as_outlet(b["id"]), "Idempotency-Key": "same"})
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]
    assert rb.json()["outlet_id"] == b["id"] and "idempotent-replayed" not in rb.headers


def test_twenty_identical_requests_at_once_make_exactly_one_job(api):
    headers = _with_key(api, "burst-1")
    responses = run_together([lambda: api.post("/v1/jobs", job_body(), headers=headers) for _ in range(20)])
    assert all(not isinstance(r, BaseException) for r in responses), responses
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    assert statuses[201] >= 1
    assert {r.json()["id"] for r in responses if r.status_code == 201} == {
        responses[[r.status_code for r in responses].index(201)].json()["id"]
    }
    assert {r.json()["code"] for r in responses if r.status_code == 409} <= {"idempotency-key-in-use"}
    assert all(r.headers.get("retry-after") == "1" for r in responses if r.status_code == 409)
    assert _jobs(api) == 1
    # Once the first has answered, every retry is a replay.
    assert api.post("/v1/jobs", job_body(), headers=headers).headers["idempotent-replayed"] == "true"


def test_a_phone_resending_a_status_change_gets_the_first_answer_not_a_conflict(api):
    tech = api.technician()
    job = api.job()
    assert (
        api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "closer"}).status_code == 200
    )
    phone = {**api.as_technician(tech["id"]), "Idempotency-Key": "tap-1"}
    body = {"status": "en_route", "at": "2026-03-10T09:00:00Z"}
    first = api.post(f"/v1/jobs/{job['id']}/status", body, headers=phone)
    assert first.status_code == 200, first.text
    again = api.post(f"/v1/jobs/{job['id']}/status", body, headers=phone)
    assert again.status_code == 200 and again.json() == first.json()
    without_key = api.post(f"/v1/jobs/{job['id']}/status", body, headers=api.as_technician(tech["id"]))
    assert without_key.status_code == 409  # the same tap without a key is a second, illegal move
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    assert [e["data"].get("to") for e in events if e["type"] == "status_changed"] == ["en_route"]


def test_a_refused_request_releases_its_key_so_the_retry_runs_again(api):
    tech = api.technician()
    job = api.job()
    phone = {**api.as_technician(tech["id"]), "Idempotency-Key": "early-tap"}
    body = {"status": "en_route", "at": "2026-03-10T09:00:00Z"}
    assert api.post(f"/v1/jobs/{job['id']}/status", body, headers=phone).status_code == 404  # not theirs yet
    assert (
        api.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "closer"}).status_code == 200
    )
    # 404 is a final answer for that request: kept and replayed.
    assert api.post(f"/v1/jobs/{job['id']}/status", body, headers=phone).status_code == 404
    # A 409 is not kept: a conflict may clear, so the key is free again.
    api.post(
        f"/v1/jobs/{job['id']}/status",
        {"status": "en_route", "at": "2026-03-10T09:00:00Z"},
        headers=api.as_technician(tech["id"]),
    )
    conflict = {**api.as_technician(tech["id"]), "Idempotency-Key": "second-tap"}
    assert (
        api.post(
            f"/v1/jobs/{job['id']}/status", {"status": "en_route", "at": "2026-03-10T09:00:00Z"}, headers=conflict
        ).status_code
        == 409
    )
    r = api.post(f"/v1/jobs/{job['id']}/status", {"status": "on_site", "at": "2026-03-10T09:00:00Z"}, headers=conflict)
    assert r.status_code == 200, r.text  # the released key is free for the next request
    with api.database.transaction(write=False) as session:
        kept = {k.key: k.status for k in session.scalars(select(IdempotencyKey))}
    assert kept["early-tap"] == 404


def test_keys_expire_and_are_purged_after_the_configured_time(api):
    headers = _with_key(api, "old-key")
    first = api.post("/v1/jobs", job_body(), headers=headers).json()
    assert _keys(api) == 1
    api.clock.advance(hours=23)
    assert api.post("/v1/jobs", job_body(), headers=headers).json()["id"] == first["id"]
    api.clock.advance(hours=2)
    assert idempotency.purge(database=api.database, now=api.clock.now()) == 1
    assert _keys(api) == 0
    second = api.post("/v1/jobs", job_body(), headers=headers)
    assert second.status_code == 201 and second.json()["id"] != first["id"]


def test_an_expired_key_that_was_not_purged_yet_runs_afresh(api):
    headers = _with_key(api, "stale")
    first = api.post("/v1/jobs", job_body(), headers=headers).json()
    api.clock.advance(timedelta(hours=24, seconds=1))
    assert api.post("/v1/jobs", job_body(fault="other"), headers=headers).json()["id"] != first["id"]


def test_a_key_that_is_not_printable_ascii_or_too_long_is_refused(api):
    r = api.post("/v1/jobs", job_body(), headers=_with_key(api, "x" * 256))
    assert r.status_code == 422 and r.json()["code"] == "invalid-idempotency-key"
    assert _jobs(api) == 0


def test_without_a_valid_api_key_the_header_changes_nothing(api):
    r = api.client.post("/v1/jobs", json=job_body(), headers={"Idempotency-Key": "k"})
    assert r.status_code == 401
    assert _keys(api) == 0


def test_every_write_operation_documents_the_header(api):
    spec = api.client.get("/openapi.json").json()
    writes = [
        (m, p, op)
        for p, ops in spec["paths"].items()
        for m, op in ops.items()
        if m in {"post", "put", "patch", "delete"}
    ]
    assert writes
    for method, path, op in writes:
        names = [p["name"] for p in op.get("parameters", [])]
        assert "Idempotency-Key" in names, (method, path)
        assert {"409", "422"} <= set(op["responses"]), (method, path)


# The body's meaning, not its spelling ----------------------------------------------------------
#
# A retry must be recognised even when the client spells the same request differently: a new
# multipart boundary (most HTTP clients and browsers pick one per attempt), JSON keys in another
# order or other whitespace. What the request says still counts: another picture, field or file
# name under the same key is another request (422).


def form(boundary: str, *parts: tuple[str, str | None, str | None, bytes], header_case=str) -> bytes:
    """A multipart/form-data body spelled by hand, so a test chooses its boundary and framing."""
    out = b""
    for name, filename, content_type, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\n{header_case('Content-Disposition')}: {disposition}\r\n".encode()
        if content_type is not None:
            out += f"{header_case('Content-Type')}: {content_type}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def send_form(api, job_id, body: bytes, boundary: str, headers):
    return api.client.post(
        f"/v1/jobs/{job_id}/photos",
        content=body,
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def _photos_and_uploads(api, job_id) -> tuple[int, int]:
    with api.database.transaction(write=False) as session:
        photos = session.scalar(select(func.count()).select_from(Photo))
    events = api.get(f"/v1/jobs/{job_id}/events").json()["items"]
    return photos, sum(1 for e in events if e["type"] == "photo_uploaded")


def test_a_retried_photo_upload_with_a_new_boundary_gets_the_first_answer(api):
    _, job, phone = on_site(api)
    picture = good_photo(api)
    phone = {**phone, "Idempotency-Key": "photo-tap-1"}
    first = send_form(
        api, job["id"], form("attempt-1-a8f3", ("file", "photo.jpg", "image/jpeg", picture)), "attempt-1-a8f3", phone
    )
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    api.clock.advance(seconds=40)  # the answer was lost; the phone tries again, framing the body anew
    again = send_form(
        api,
        job["id"],
        form(
            "----WebKitFormBoundary7MA4YWxkTrZu0gW", ("file", "photo.jpg", "image/jpeg", picture), header_case=str.lower
        ),
        "----WebKitFormBoundary7MA4YWxkTrZu0gW",
        phone,
    )
    assert again.status_code == 201, again.text  # the first answer, not the 200 of a second upload
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    # An ordinary client (httpx, its own random boundary) retrying is recognised too.
    third = upload(api, job["id"], picture, phone)
    assert third.status_code == 201 and third.headers["idempotent-replayed"] == "true"
    assert third.json()["id"] == first.json()["id"]
    assert _photos_and_uploads(api, job["id"]) == (1, 1)


def test_the_same_key_with_another_picture_name_or_field_is_refused(api):
    _, job, phone = on_site(api)
    picture = good_photo(api)
    phone = {**phone, "Idempotency-Key": "photo-tap-2"}
    assert upload(api, job["id"], picture, phone).status_code == 201
    other_picture = image_bytes(gps=CUSTOMER, gps_time=api.clock.now(), colour=(1, 2, 3))
    refused = [
        upload(api, job["id"], other_picture, phone),  # another photo
        upload(api, job["id"], picture, phone, name="IMG_0001.jpg"),  # another file name
        upload(api, job["id"], picture, phone, content_type="image/png"),  # another declared type
        send_form(api, job["id"], form("b1", ("photo", "photo.jpg", "image/jpeg", picture)), "b1", phone),  # field
        send_form(
            api,
            job["id"],
            form("b2", ("file", "photo.jpg", "image/jpeg", picture), ("note", None, None, b"kitchen")),
            "b2",
            phone,
        ),  # an extra part
    ]
    for r in refused:
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "idempotency-key-reused"
    assert _photos_and_uploads(api, job["id"]) == (1, 1)


def test_a_malformed_multipart_body_with_a_key_is_a_clear_4xx_not_a_500(api, settings):
    _, job, phone = on_site(api)
    picture = good_photo(api)
    whole = form("b0", ("file", "photo.jpg", "image/jpeg", picture))
    malformed = {
        "no boundary": (whole, "multipart/form-data"),
        "another boundary": (whole, "multipart/form-data; boundary=not-the-one"),
        "cut off": (whole[: len(whole) // 2], "multipart/form-data; boundary=b0"),
        "not multipart at all": (b"\x00\xff" * 500, "multipart/form-data; boundary=b0"),
        "a part without a name": (whole.replace(b' name="file";', b""), "multipart/form-data; boundary=b0"),
        "a boundary too long": (whole, "multipart/form-data; boundary=" + "x" * 300),
        "more parts than a form may have": (
            form("b0", *[("note", None, None, b"x")] * 2001),
            "multipart/form-data; boundary=b0",
        ),
    }
    for n, (what, (body, content_type)) in enumerate(malformed.items()):
        headers = {**phone, "Idempotency-Key": f"bad-{n}", "Content-Type": content_type}
        r = api.client.post(f"/v1/jobs/{job['id']}/photos", content=body, headers=headers)
        assert 400 <= r.status_code < 500, (what, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), what
        again = api.client.post(f"/v1/jobs/{job['id']}/photos", content=body, headers=headers)
        assert (again.status_code, again.json()) == (r.status_code, r.json()), what
    assert _photos_and_uploads(api, job["id"]) == (0, 0)
    assert stored_files(settings) == []


def test_json_key_order_and_whitespace_do_not_make_another_request(api):
    headers = {**_with_key(api, "order-B-7"), "Content-Type": "application/json"}
    body = job_body(external_ref="B-7")
    first = api.client.post("/v1/jobs", content=json.dumps(body).encode(), headers=headers)
    assert first.status_code == 201, first.text
    reordered = {k: body[k] for k in reversed(list(body))}
    spelled_otherwise = json.dumps(reordered, indent=2, ensure_ascii=True).encode()  # "D\u0105browska"
    again = api.client.post(
        "/v1/jobs", content=spelled_otherwise, headers={**headers, "Content-Type": "application/json; charset=utf-8"}
    )
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # What it says still counts: another value, or the same items in another order, is another request.
    for changed in ({**body, "fault": "Leaks"}, {**body, "customer": {**body["customer"], "lat": 52.0}}):
        r = api.client.post("/v1/jobs", content=json.dumps(changed).encode(), headers=headers)
        assert r.status_code == 422 and r.json()["code"] == "idempotency-key-reused"
    assert _jobs(api) == 1


def test_a_key_taken_before_fingerprints_read_the_body_still_replays_a_byte_for_byte_retry(api):
    body = json.dumps(job_body(external_ref="C-1")).encode()
    headers = {**_with_key(api, "before-upgrade"), "Content-Type": "application/json"}
    first = api.client.post("/v1/jobs", content=body, headers=headers)
    assert first.status_code == 201
    with api.database.transaction() as session:  # as the previous version stored it: the raw bytes
        row = session.scalar(select(IdempotencyKey))
        row.fingerprint = fingerprints.raw("POST", "/v1/jobs", b"", "application/json", body)
    again = api.client.post("/v1/jobs", content=body, headers=headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    r = api.client.post("/v1/jobs", content=json.dumps(job_body(external_ref="C-2")).encode(), headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "idempotency-key-reused"


def test_fingerprints_never_fail_on_a_bad_body():
    picture = b"\xff\xd8" + bytes(range(256)) * 40 + b"\r\n--b"  # ends like the start of a boundary
    parts = (("file", "p.jpg", "image/jpeg", picture), ("note", None, None, b""))
    whole = form("b0", *parts)
    multipart = "multipart/form-data; boundary=b0"
    meaning = fingerprints.of("POST", "/p", b"", multipart, whole)
    assert meaning != fingerprints.raw("POST", "/p", b"", multipart, whole)
    assert fingerprints.of("POST", "/p", b"", "multipart/form-data; boundary=zz", form("zz", *parts)) == meaning
    for cut in range(0, len(whole), 97):  # every cut-off body: the raw bytes decide
        body = whole[:cut]
        assert fingerprints.of("POST", "/p", b"", multipart, body) == fingerprints.raw(
            "POST", "/p", b"", multipart, body
        )
    for body in (b"{", b"[" * 100_000 + b"]" * 100_000, b"1" * 5000, b"\xff\xfe{}", b'{"a": NaN}'):
        assert fingerprints.of("POST", "/p", b"", "application/json", body)
    # Past the most parts a form may have, parsing stops early and the raw bytes decide.
    many = form("b0", *[("note", None, None, b"x")] * (fingerprints.MULTIPART_MAX_PARTS + 1))
    assert fingerprints.of("POST", "/p", b"", multipart, many) == fingerprints.raw("POST", "/p", b"", multipart, many)
    # Empty parts and absent filenames are not confused with each other.
    assert fingerprints.of("POST", "/p", b"", multipart, form("b0", ("f", None, None, b""))) != fingerprints.of(
        "POST", "/p", b"", multipart, form("b0", ("f", "", None, b""))
    )


def test_the_middleware_never_runs_a_request_whose_body_was_cut_off(api):
    """Half a JSON body and then `http.disconnect` (the client went away): the route is not
    called, no key is taken, nothing is stored. On its own, without the body reader in front."""
    import anyio

    from dispatch.idempotency.middleware import IdempotencyMiddleware

    called = []

    async def route(scope, receive, send):
        called.append(scope["path"])

    body = json.dumps(job_body()).encode()
    messages = [
        {"type": "http.request", "body": body[:40], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/jobs",
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {api.keys['dispatcher']}".encode()),
            (b"idempotency-key", b"order-cut"),
            (b"content-type", b"application/json"),
        ],
        "app": api.client.app,
    }
    anyio.run(IdempotencyMiddleware(route), scope, receive, send)
    assert called == []
    assert sent == []  # nobody is listening
    assert _keys(api) == 0
