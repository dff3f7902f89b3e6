"""kill -9 in the middle of an intake load (docs/decisions.md, "Storage"): every job
that got a 201 is there after a restart, with its deadline, and every event of it that the
outlet subscribed to reaches the outlet's webhook receiver (sent by the worker embedded in
`dispatch serve`, from the outbox rows committed with the jobs)."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy import select, text
from support import servers
from support.api import job_body
from support.receiver import Receiver

from dispatch.auth import service as auth
from dispatch.events.models import JobEvent
from dispatch.webhooks.catalogue import public_types

ADMIN_KEY = "crash-test-admin-key-0123456789"
WANTED = ["job.created", "job.assigned"]


def _env(settings, tmp_path) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "DISPATCH_ADMIN_KEY": ADMIN_KEY,
        "DISPATCH_ENVIRONMENT": "test",
        "DISPATCH_DATA_DIR": str(tmp_path / "server-data"),
        "DISPATCH_AUTO_DISPATCH": "true",
        "DISPATCH_SQLITE_SYNCHRONOUS": "FULL",
        "DISPATCH_RATE_LIMIT_PER_SECOND": "0",
        "DISPATCH_WEBHOOK_WORKER": "true",
        "DISPATCH_WEBHOOK_POLL_SECONDS": "0.1",
        "DISPATCH_WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        # A delivery the killed worker had claimed waits for its lease to run out; keep that short.
        "DISPATCH_WEBHOOK_LEASE_SECONDS": "3",
    }


def test_jobs_acknowledged_before_a_kill_9_survive_with_deadlines_and_all_their_webhooks(settings, database, tmp_path):
    with database.transaction() as session:
        auth.ensure_admin_key(session=session, secret=ADMIN_KEY, now=datetime.now(UTC))
    receiver = Receiver().start()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    acknowledged: dict[int, str] = {}  # job id -> due_at from its 201
    lock = threading.Lock()
    try:
        with servers.running(env=_env(settings, tmp_path), log_dir=tmp_path) as (server,):
            with httpx.Client(base_url=server.base_url, timeout=10) as client:
                outlet = client.post("/v1/outlets", json={"code": "shop-k9", "name": "K9"}, headers=admin).json()
                shop = {"Authorization": f"Bearer {outlet['api_key']}"}
                for i in range(4):
                    r = client.post(
                        "/v1/technicians",
                        headers=admin,
                        json={
                            "name": f"Tech {i}",
                            "skills": ["washing machine"],
                            "lat": 52.2297,
                            "lon": 21.0122,
                            "capacity": 100,
                        },
                    )
                    assert r.status_code == 201, r.text
                r = client.post("/v1/webhooks", headers=shop, json={"url": receiver.url, "event_types": WANTED})
                assert r.status_code == 201, r.text

            def load(worker: int) -> None:
                with httpx.Client(base_url=server.base_url, timeout=10) as client:
                    for i in range(10_000):
                        ref = f"K9-{worker}-{i}"
                        try:
                            r = client.post(
                                "/v1/jobs", json=job_body(external_ref=ref), headers={**shop, "Idempotency-Key": ref}
                            )
                        except httpx.TransportError:
                            return  # the server is gone
                        if r.status_code == 201:
                            with lock:
                                acknowledged[r.json()["id"]] = r.json()["due_at"]

            threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(6)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 60
            while len(acknowledged) < 60 and time.monotonic() < deadline:
                time.sleep(0.02)
            os.killpg(server.process.pid, signal.SIGKILL)  # mid-load, requests in flight
            server.process.wait(timeout=10)
            for t in threads:
                t.join(30)
        assert len(acknowledged) >= 60, "the load did not get going"

        if settings.resolved_database_url.startswith("sqlite"):
            with database.engine.connect() as conn:
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"

        with servers.running(env=_env(settings, tmp_path / "again"), log_dir=tmp_path) as (server,):
            with httpx.Client(base_url=server.base_url, timeout=10) as client:
                for job_id, due_at in acknowledged.items():
                    r = client.get(f"/v1/jobs/{job_id}", headers=shop)
                    assert r.status_code == 200, (job_id, r.text)
                    assert r.json()["due_at"] == due_at
            with database.transaction(write=False) as session:
                rows = session.execute(
                    select(JobEvent.id, JobEvent.type, JobEvent.data).where(JobEvent.job_id.in_(list(acknowledged)))
                ).all()
            expected = {event_id for event_id, kind, data in rows if set(public_types(kind, data)) & set(WANTED)}
            assert len(expected) >= len(acknowledged) + 1  # created for each, and assigned while capacity lasts
            deadline = time.monotonic() + 90
            while not expected <= set(receiver.ids()) and time.monotonic() < deadline:
                time.sleep(0.1)  # the server's own worker sends them; we only watch
            print(f"acknowledged {len(acknowledged)} jobs, {len(expected)} events delivered")
            missing = expected - set(receiver.ids())
            assert not missing, f"{len(missing)} events of acknowledged jobs never reached the receiver"
            by_job: dict[int, list[int]] = {}
            for item in receiver.accepted:
                by_job.setdefault(item.payload["data"]["job_id"], []).append(item.payload["data"]["event_id"])
            for events_of_job in by_job.values():  # in order per job (a resend after the kill may repeat one)
                firsts = list(dict.fromkeys(events_of_job))
                assert firsts == sorted(firsts)
    finally:
        receiver.stop()
