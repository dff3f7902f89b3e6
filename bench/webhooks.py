"""Webhook delivery: throughput to a local receiver, and how long a backlog takes to drain.

The receiver is a real uvicorn process on 127.0.0.1 (``webhook_receiver.py``, answers 204).
Events are made by the service's own code (``flows.receive`` and ``events.record``), so each
delivery row comes from the real outbox. The worker is the one ``dispatch serve`` embeds,
driven here with a frozen clock that is moved past every backoff, so the backlog figure is the
time to send once the receiver is back, not the time the backoff would have waited.

Figures:
* throughput: N new jobs, one ``job.created`` delivery each, sent by one worker;
* backlog: 10,000 events (2,000 jobs x 5 events, each job's in order) written while the
  receiver is down; one failing round; then the receiver comes back and the clock is moved
  past the backoff: time until every delivery has succeeded.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import intake
from sqlalchemy import func, select

from dispatch.auth.service import SYSTEM
from dispatch.clock import FrozenClock
from dispatch.config import Settings
from dispatch.database.core import Database, make_engine
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.jobs import flows
from dispatch.jobs.schemas import JobCreate
from dispatch.outlets import service as outlets
from dispatch.webhooks import service as webhooks
from dispatch.webhooks.models import WebhookDelivery
from dispatch.webhooks.schemas import WebhookCreate
from dispatch.webhooks.worker import Worker

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
BODY = {
    "customer": {"name": "C", "address": "Marszałkowska 1, Warszawa", "lat": 52.23, "lon": 21.01},
    "product": {"category": "washing machine"},
    "fault": "Leaks",
}


def _settings(url: str, **extra: Any) -> Settings:
    return Settings(
        database_url=url,
        webhook_allow_private_urls=True,
        sqlite_synchronous="NORMAL",
        webhook_batch_size=200,
        webhook_concurrency=16,
        **extra,
    )


def _subscribe(database: Database, url: str) -> int:
    with database.transaction() as session:
        outlet = outlets.create(session=session, code=f"bench-{time.time_ns()}", name="bench", now=T0)
        webhooks.create(
            session=session,
            webhook_in=WebhookCreate(
                url=url, event_types=["job.created", "job.status_changed", "job.assigned"], outlet_id=outlet.id
            ),
            caller=SYSTEM,
            now=T0,
            allow_private=True,
        )
        return outlet.id


def _make_jobs(database: Database, settings: Settings, outlet_id: int, jobs: int, extra_events: int) -> None:
    from dispatch.auth.models import Role
    from dispatch.auth.service import Caller

    caller = Caller(key_id=-1, role=Role.outlet, outlet_id=outlet_id)
    job_in = JobCreate.model_validate(BODY)
    for start in range(0, jobs, 500):
        with database.transaction() as session:
            for _ in range(min(500, jobs - start)):
                job = flows.receive(
                    session=session, job_in=job_in, placed=None, caller=caller, now=T0, settings=settings
                )
                for i in range(extra_events):
                    events.record(
                        session=session,
                        job_id=job.id,
                        type=EventType.status_changed,
                        actor="bench",
                        now=T0,
                        to=f"step-{i}",
                    )


def _pending(database: Database) -> int:
    with database.transaction(write=False) as session:
        return session.scalar(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.state != "succeeded")
        )


def start_receiver(port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "webhook_receiver:app",
        "--app-dir",
        str(intake.BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    handle = log.open("ab")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"receiver did not start; see {log}")


def stop_receiver(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def run(url: str, log: Path, *, jobs: int = 5000, backlog_jobs: int = 2000, per_job: int = 5) -> dict[str, Any]:
    settings = _settings(url)
    database = Database(make_engine(settings))
    clock = FrozenClock(T0)
    port = intake.free_port()
    receiver = start_receiver(port, log)
    hook_url = f"http://127.0.0.1:{port}/hooks"
    out: dict[str, Any] = {}
    try:
        # 1. Throughput: one delivery per new job.
        outlet_id = _subscribe(database, hook_url)
        _make_jobs(database, settings, outlet_id, jobs, 0)
        worker = Worker(database=database, settings=settings, clock=clock)
        t0 = time.perf_counter()
        sent = worker.drain()
        elapsed = time.perf_counter() - t0
        assert _pending(database) == 0, "throughput run left deliveries unsent"
        out["throughput"] = {"deliveries": sent, "seconds": elapsed, "per_second": sent / elapsed}

        # 2. Backlog: the receiver is down while events pile up.
        stop_receiver(receiver)
        outlet_id = _subscribe(database, hook_url)
        _make_jobs(database, settings, outlet_id, backlog_jobs, per_job - 1)
        backlog = _pending(database)
        t_fail = time.perf_counter()
        failed_round = worker.drain()
        t_fail = time.perf_counter() - t_fail
        receiver = start_receiver(port, log)
        clock.advance(timedelta(hours=1))  # past the first backoff
        t0 = time.perf_counter()
        drained = worker.drain()
        elapsed = time.perf_counter() - t0
        assert _pending(database) == 0, "backlog not drained"
        out["backlog"] = {
            "events": backlog,
            "jobs": backlog_jobs,
            "per_job": per_job,
            "failing_round_attempts": failed_round,
            "failing_round_seconds": t_fail,
            "attempts_after_return": drained,
            "seconds": elapsed,
            "per_second": backlog / elapsed,
        }
        worker.close()
    finally:
        if receiver.poll() is None:
            stop_receiver(receiver)
        database.dispose()
    return out


def main() -> None:
    import argparse
    import json
    import os
    import tempfile

    from sqlalchemy import create_engine, make_url, text

    from dispatch.database import migrate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dbs", default="sqlite,postgresql")
    p.add_argument(
        "--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    )
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--backlog-jobs", type=int, default=2000)
    p.add_argument("--per-job", type=int, default=5)
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        log = Path(tmp) / "receiver.log"
        for db in [d.strip() for d in args.dbs.split(",") if d.strip()]:
            if db == "sqlite":
                url = f"sqlite:///{tmp}/webhooks.sqlite3"
            else:
                base = make_url(args.pg_url)
                name = f"bench_webhooks_{os.getpid()}"
                admin = create_engine(base, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                url = base.set(database=name).render_as_string(hide_password=False)
            migrate.upgrade(Settings(database_url=url))
            try:
                results[db] = run(url, log, jobs=args.jobs, backlog_jobs=args.backlog_jobs, per_job=args.per_job)
            finally:
                if db != "sqlite":
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
            t, b = results[db]["throughput"], results[db]["backlog"]
            print(
                f"{db}: throughput {t['per_second']:.0f} deliveries/s ({t['deliveries']} in {t['seconds']:.1f} s); "
                f"backlog of {b['events']} events ({b['jobs']} jobs x {b['per_job']}) drained in {b['seconds']:.1f} s "
                f"({b['per_second']:.0f}/s) after the receiver came back"
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
