"""Slow and hostile clients against a served app, over real sockets (docs/decisions.md, "Slow
and hostile clients"): bodies that never come hold no slot that keyed requests need; a
stalled or trickled body is cut with 408 ``body-timeout``; a steady slow upload still arrives;
half a body, cut off by a disconnect, runs nothing and keeps no Idempotency-Key.

The timeouts under test are the server's real socket timeouts, so they are set small here
(``DISPATCH_BODY_TIMEOUT_SECONDS``); the client paces its own sends with short sleeps.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime

import anyio.to_thread
import httpx
import pytest
from fastapi import Request
from sqlalchemy import func, select
from support import servers
from support.api import job_body

from dispatch.auth import service as auth
from dispatch.idempotency.models import IdempotencyKey
from dispatch.jobs.models import Job

ADMIN_KEY = "slow-clients-admin-key-0123456789"


@contextmanager
def served(settings, database, tmp_path, **env: str) -> Iterator[servers.Server]:
    with database.transaction() as session:
        auth.ensure_admin_key(session=session, secret=ADMIN_KEY, now=datetime.now(UTC))
    base = {
        "DATABASE_URL": settings.database_url,
        "DISPATCH_ADMIN_KEY": ADMIN_KEY,
        "DISPATCH_ENVIRONMENT": "test",
        "DISPATCH_DATA_DIR": str(tmp_path / "server-data"),
        "DISPATCH_WEBHOOK_WORKER": "false",
    }
    with servers.running(env={**base, **env}, log_dir=tmp_path) as (server,):
        yield server


def send_head(server: servers.Server, method: str, path: str, *, length: int, headers: dict[str, str]) -> socket.socket:
    """A connection that has sent a request's headers (with Content-Length) and no body yet."""
    sock = socket.create_connection((servers.HOST, server.port), timeout=10)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {servers.HOST}", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of the one response on this connection (the server closes it)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body) if body else {}


def count(database, model) -> int:
    with database.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(model))


KEYED = {"Authorization": f"Bearer {ADMIN_KEY}"}
# The start of a photo upload as a phone sends it: the file part's headers, then its bytes.
PHOTO_PART_HEAD = (
    b'--x\r\nContent-Disposition: form-data; name="file"; filename="signoff.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
)


def test_forty_bodies_that_never_come_do_not_keep_a_keyed_request_waiting(settings, database, tmp_path):
    """The review's attack: more sockets than slots (32) send `POST /v1/jobs` headers with a
    Content-Length and never the body, some without a key, some with one, some the start of a
    photo upload; and a few more never finish their headers. Bodies are read before a request
    takes a slot, so none of them holds one: the dispatcher's list answers at once."""
    with served(settings, database, tmp_path, DISPATCH_BODY_TIMEOUT_SECONDS="60") as server, ExitStack() as stack:
        json_headers = {"Content-Type": "application/json"}
        photo_headers = {**KEYED, "Content-Type": "multipart/form-data; boundary=x"}
        for i in range(40):
            if i % 3 == 2:
                sock = send_head(server, "POST", "/v1/jobs/1/photos", length=2_000_000, headers=photo_headers)
                sock.sendall(PHOTO_PART_HEAD + b"\xff" * 20_000)
            else:
                headers = {**json_headers, **(KEYED if i % 3 else {})}
                sock = send_head(server, "POST", "/v1/jobs", length=1000, headers=headers)
            stack.callback(sock.close)
        for _ in range(10):  # headers that never end: uvicorn holds these, the app never sees them
            sock = socket.create_connection((servers.HOST, server.port), timeout=10)
            sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Le")
            stack.callback(sock.close)
        with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
            # A round trip after the 40 heads: the server has taken them in by now.
            assert client.get("/healthz").status_code == 200
            started = time.monotonic()
            r = client.get("/v1/jobs", headers=KEYED)
            assert r.status_code == 200, r.text
            assert time.monotonic() - started < 3.0
            assert client.get("/readyz").status_code == 200  # nothing is stuck in a slot


def test_a_stalled_upload_is_cut_with_408_body_timeout(settings, database, tmp_path):
    """A phone that sent part of a photo and then lost its signal: after the body deadline
    (1 s of silence here) the server answers 408 and lets go of the connection."""
    with served(settings, database, tmp_path, DISPATCH_BODY_TIMEOUT_SECONDS="1") as server:
        sock = send_head(
            server,
            "POST",
            "/v1/jobs/1/photos",
            length=2_000_000,
            headers={**KEYED, "Content-Type": "multipart/form-data; boundary=x"},
        )
        with sock:
            sock.sendall(PHOTO_PART_HEAD + b"\xff" * 20_000)
            started = time.monotonic()
            status, problem = read_response(sock)
        assert status == 408
        assert problem["code"] == "body-timeout"
        assert time.monotonic() - started < 5.0


def test_a_trickled_body_is_cut_by_the_minimum_transfer_rate(settings, database, tmp_path):
    """One byte every 0.3 s never leaves the connection silent for the 1 s allowed, but it is
    far below the minimum rate: the whole body gets 1 s plus its size at that rate."""
    with served(settings, database, tmp_path, DISPATCH_BODY_TIMEOUT_SECONDS="1") as server:
        sock = send_head(server, "POST", "/v1/jobs", length=1000, headers={**KEYED, "Content-Type": "application/json"})
        with sock:
            started = time.monotonic()
            sock.settimeout(0.3)
            status = None
            for _ in range(30):
                try:
                    sock.sendall(b" ")
                    status = int(sock.recv(65536).split(b" ", 2)[1])
                    break
                except TimeoutError:
                    continue
                except OSError:  # the server closed after answering; the answer is read below
                    break
            if status is None:
                sock.settimeout(5)
                status, _ = read_response(sock)
        assert status == 408
        assert time.monotonic() - started < 5.0


def test_a_slow_but_steady_upload_is_not_cut(settings, database, tmp_path):
    """200 KB at about 60 KB/s takes over 3 s, three times the 1 s allowed for a silent body,
    and arrives: the deadline grows with what has arrived (the route then answers for itself)."""
    with served(settings, database, tmp_path, DISPATCH_BODY_TIMEOUT_SECONDS="1") as server:
        chunks = [PHOTO_PART_HEAD, *[b"\xff" * 20_000] * 10, b"\r\n--x--\r\n"]
        sock = send_head(
            server,
            "POST",
            "/v1/jobs/999/photos",
            length=sum(map(len, chunks)),
            headers={**KEYED, "Content-Type": "multipart/form-data; boundary=x"},
        )
        with sock:
            for chunk in chunks:
                sock.sendall(chunk)
                time.sleep(0.33)
            status, problem = read_response(sock)
        assert status != 408, problem
        assert 400 <= status < 500


@pytest.mark.parametrize("with_key", [True, False], ids=["with-idempotency-key", "without"])
def test_a_body_cut_off_by_a_disconnect_runs_nothing_and_the_retry_goes_through(settings, database, tmp_path, with_key):
    """The connection drops in the middle of the JSON: that is not the end of the body. No job
    is made, no answer is kept for the key, and the honest retry creates the job once."""
    body = json.dumps(job_body(external_ref="CUT-1")).encode()
    headers = {**KEYED, "Content-Type": "application/json"}
    if with_key:
        headers["Idempotency-Key"] = "order-CUT-1"
    with served(settings, database, tmp_path) as server:
        sock = send_head(server, "POST", "/v1/jobs", length=len(body), headers=headers)
        sock.sendall(body[: len(body) // 2])
        sock.close()
        with httpx.Client(base_url=server.base_url, timeout=10.0) as client:
            assert client.get("/healthz").status_code == 200  # the server has seen the close
            assert count(database, Job) == 0
            assert count(database, IdempotencyKey) == 0
            retry = client.post("/v1/jobs", content=body, headers=headers)
            assert retry.status_code == 201, retry.text
            assert "idempotent-replayed" not in retry.headers
    assert count(database, Job) == 1


# Slots, in process: who may hold them, and readiness when they are all held too long ---------


class Holding:
    """A route that keeps its request (and so its slot) until the test lets go."""

    def __init__(self, api) -> None:
        self.api = api
        self.gate = threading.Event()
        self.arrived: queue.Queue[str] = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=8)

        async def hold(request: Request) -> dict[str, bool]:
            self.arrived.put(request.headers.get("x-who", ""))
            await anyio.to_thread.run_sync(self.gate.wait)
            return {"held": True}

        api.client.app.add_api_route("/v1/test-hold", hold)

    def start(self, headers: dict[str, str]) -> Future:
        return self.pool.submit(self.api.client.get, "/v1/test-hold", headers=headers)

    def entered(self, n: int) -> list[str]:
        return [self.arrived.get(timeout=5) for _ in range(n)]

    def release(self) -> None:
        self.gate.set()
        self.pool.shutdown(wait=True)


@pytest.fixture
def four_slots(settings):
    settings.max_concurrent_requests = 4


@pytest.fixture
def holding(four_slots, api) -> Iterator[Holding]:
    holding = Holding(api)
    yield holding
    holding.release()


def test_requests_without_a_known_key_never_hold_more_than_half_the_slots(four_slots, api, holding):
    assert api.get("/v1/jobs").status_code == 200  # the dispatcher's key is known from now on
    anonymous = [holding.start({"x-who": "anonymous"}) for _ in range(3)]
    assert holding.entered(2) == ["anonymous", "anonymous"]
    keyed = holding.start({**api.headers("dispatcher"), "x-who": "dispatcher"})
    assert holding.entered(1) == ["dispatcher"]  # the third anonymous request is still waiting
    holding.release()
    assert [f.result().status_code for f in [*anonymous, keyed]] == [200] * 4


def test_readiness_says_saturated_when_every_slot_has_been_taken_for_too_long(four_slots, api, holding):
    assert api.get("/v1/jobs").status_code == 200  # known, so it may take every slot
    held = [holding.start(api.headers("dispatcher")) for _ in range(4)]
    holding.entered(4)
    assert api.client.get("/readyz").status_code == 200  # full for a moment is only busy
    api.clock.advance(seconds=11)  # past DISPATCH_READINESS_SATURATED_SECONDS (10)
    r = api.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "saturated"
    assert api.client.get("/healthz").status_code == 200  # alive, but send traffic elsewhere
    holding.release()
    assert all(f.result().status_code == 200 for f in held)
    assert api.client.get("/readyz").status_code == 200


def test_anonymous_uploads_cannot_spool_more_than_half_the_budget_and_known_keys_still_upload(
    settings, database, tmp_path
):
    """Bodies still arriving cost disk: an attacker opening uploads without a key gets at most
    half of DISPATCH_BODY_SPOOL_MAX_BYTES (1 MiB here) and then 503 ``server-busy``, while a
    technician whose key just authenticated still gets their photo in."""
    with served(settings, database, tmp_path, DISPATCH_BODY_SPOOL_MAX_BYTES=str(1024 * 1024)) as server:
        anonymous = {"Content-Type": "multipart/form-data; boundary=x"}
        first = send_head(server, "POST", "/v1/jobs/1/photos", length=400_000, headers=anonymous)
        with first:
            first.sendall(PHOTO_PART_HEAD + b"\xff" * 100_000)  # and then holds the rest back
            time.sleep(0.3)  # the server has taken the first one's headers and reserved its length
            with send_head(server, "POST", "/v1/jobs/1/photos", length=400_000, headers=anonymous) as second:
                status, problem = read_response(second)
            assert status == 503 and problem["code"] == "server-busy"
            # A known key (it authenticated a moment ago) still uploads past the anonymous share.
            with httpx.Client(base_url=server.base_url, headers=KEYED, timeout=10) as client:
                assert client.get("/v1/jobs").status_code == 200
                r = client.post("/v1/jobs/1/photos", files={"file": ("p.jpg", b"\xff" * 450_000, "image/jpeg")})
                assert r.status_code == 404, r.text  # past the spool: the job does not exist
