"""KPIs (``GET /v1/metrics``) for one month: where the time goes, on a data set built in minutes.

The SLA benchmark (``bench/sla.py``) measures the month at 1,000,000 jobs, which takes most of an
hour to load. This one builds only what the KPIs read, with the month as full as there: the
same generator (``sla.Generator``, same technicians, policies and shapes), but the finished jobs
packed into the last ``--days`` (120) instead of a year, so ``--month-jobs`` (default 80,000)
fall in the metrics month (the month before last) with ``--technicians`` (5,000) technicians,
from about 345,000 jobs in all (a quarter of the table in the month; at 1,000,000 it is a
twelfth). No checkpoints; visits (every completed job one, some two) and
callbacks (a third of them) so the proof-of-work sums read real rows.

For each database and each variant (ungrouped, ``interval=day``, ``group_by=technician``) it
times, in-process:

- ``sql``: executing the service's statement(s) and fetching every row (``Session.execute`` is
  wrapped: the result is fetched whole before the service sees it);
- ``python``: the rest of ``metrics.service.compute`` (tallies, percentiles, the dicts);
- ``model``: building the response model from those dicts, as the route did before
  (``Metrics(...)``; 0 where the route no longer builds it);
- ``json``: writing the body: before, what FastAPI did with the model
  (``TypeAdapter(Metrics).validate_python`` of the instance and ``dump_json``); after,
  ``metrics.routes.render`` of the dicts;

and over HTTP against ``python -m uvicorn dispatch.app:create_app --factory`` (p50 of ``--reps``).

    .venv/bin/python bench/metrics.py --build --sqlite /tmp/m.sqlite3 --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_metrics
    .venv/bin/python bench/metrics.py --sqlite /tmp/m.sqlite3 --pg-url ... --label after --out results.json

``--build`` writes the databases (the PostgreSQL one must exist and be empty); without it the
same databases are measured again, e.g. with ``PYTHONPATH=<old checkout>/src`` for a "before"
(the uvicorn server inherits it). ``--profile`` prints a cProfile of the grouped variant.
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import io
import json
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import datagen
import httpx
import intake
import sla
from pydantic import TypeAdapter
from sqlalchemy import insert, text
from sqlalchemy.orm import Session
from stats import CpuMeter

import dispatch
from dispatch.config import Settings
from dispatch.database import migrate
from dispatch.database.core import Database, make_engine
from dispatch.metrics import routes, service
from dispatch.metrics.schemas import Metrics
from dispatch.outlets.models import Outlet

DAY = 86_400.0
MARGIN_DAYS = 2


def _month_ages(now: datetime) -> tuple[date, date, float, float]:
    since, until = sla.metrics_month(now)
    age = lambda d: (now - datetime.combine(d, datetime.min.time(), UTC)).total_seconds()  # noqa: E731
    return since, until, age(until), age(since)


def build(urls: dict[str, str], *, month_jobs: int, technicians: int, days: float, seed: int, now: datetime,
          say: Callable[[str], None]) -> dict[str, Any]:
    _, _, young, old = _month_ages(now)
    # Finished jobs reported over the last ``days`` (at least the month and two days before it).
    window = (3600.0, max(days * DAY, old + MARGIN_DAYS * DAY))
    finished = round(month_jobs * (window[1] - window[0]) / (old - young))
    jobs = round(finished / 0.9)
    cfg = sla.Config(jobs=jobs, open=jobs - finished, technicians=technicians, seed=seed, now=now, backlog_minutes=10)
    sk = sla.skeleton(cfg, finished_ages=window)
    sinks = {}
    for dialect, url in urls.items():
        migrate.upgrade(Settings(database_url=url))
        engine = make_engine(Settings(database_url=url))
        datagen.load(engine, sk.techs)
        with engine.begin() as conn:
            conn.execute(insert(Outlet.__table__), [  # type: ignore[attr-defined]
                {"id": i, "code": f"OUT-{i:04d}", "name": f"Outlet {i}", "created_at": now - timedelta(days=400)}
                for i in range(1, sla.OUTLETS + 1)])
            conn.execute(text("UPDATE technician SET home_branch = :b WHERE id = :id"),
                         [{"b": b, "id": i} for i, b in sk.branch.items()])
        sinks[dialect] = sla.Sink(dialect, engine)
    gen = sla.Generator(cfg, sk)
    rng = random.Random(f"{seed}:metrics:proof")
    visit_id = callback_id = 0
    counts = {"jobs": 0, "visits": 0, "callbacks": 0}
    t0 = time.perf_counter()
    for start in range(0, cfg.jobs, sla.CHUNK):
        rows, _, _ = gen.chunk(start, min(start + sla.CHUNK, cfg.jobs))
        visits, calls = [], []
        for job in rows:
            if job["completed_at"] is None or job["arrived_at"] is None:
                continue
            n = 2 if rng.random() < 0.12 else 1  # 12 % needed a second trip
            for number in range(1, n + 1):
                visit_id += 1
                on_site = job["arrived_at"] if number == 1 else job["arrived_at"] + (job["completed_at"] - job["arrived_at"]) / 2
                left = on_site + timedelta(minutes=rng.uniform(20, 90))
                visits.append({"id": visit_id, "job_id": job["id"], "number": number, "technician_id": job["technician_id"],
                               "reason": "first" if number == 1 else "follow_up", "planned_at": on_site - timedelta(hours=1),
                               "en_route_at": on_site - timedelta(minutes=30), "on_site_at": on_site, "left_at": left,
                               "outcome": "fixed" if number == n else "needs_parts", "note": None,
                               "created_by": "dispatcher:1"})
            if rng.random() < 0.33:
                for attempt in range(1, (3 if rng.random() < 0.2 else 1) + 1):
                    callback_id += 1
                    reached = attempt == 3 or rng.random() < 0.7
                    calls.append({"id": callback_id, "job_id": job["id"], "visit_id": visit_id, "attempt": attempt,
                                  "reached": reached, "fixed": True if reached else None,
                                  "satisfaction": rng.randint(1, 5) if reached else None, "note": None,
                                  "retry_after": None, "called_at": job["completed_at"] + timedelta(days=attempt),
                                  "called_by": "dispatcher:1"})
                    if reached:
                        break
        for sink in sinks.values():
            sink.write("job", rows)
            sink.write("visit", visits)
            sink.write("job_callback", calls)
        counts["jobs"] += len(rows)
        counts["visits"] += len(visits)
        counts["callbacks"] += len(calls)
    for dialect, sink in sinks.items():
        if dialect == "postgresql":
            with sink.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in ("job", "visit", "job_callback", "outlet"):
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                      f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))
                conn.execute(text("VACUUM ANALYZE"))
        else:  # as the service leaves it: no ANALYZE
            with sink.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        sink.engine.dispose()
    say(f"built {counts} with {technicians:,} technicians in {time.perf_counter() - t0:.0f} s")
    return counts | {"technicians": technicians, "now": now.isoformat()}


VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("ungrouped", {}), ("by day", {"interval": "day"}), ("by technician", {"group_by": "technician"}),
    ("by technician, limit=100", {"group_by": "technician", "limit": "100"})]


def _pages() -> bool:
    """Whether the code measured has ``limit`` (paging came with the grouped-metrics change)."""
    return "limit" in inspect.signature(service.compute).parameters


class TimedSession:
    """Times ``execute`` and fetches its whole result before the caller sees it."""

    def __init__(self, session: Session) -> None:
        self.seconds = 0.0
        self.statements = 0
        original = session.execute

        def execute(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            frozen = original(*args, **kwargs).freeze()
            self.seconds += time.perf_counter() - t0
            self.statements += 1
            return frozen()

        session.execute = execute  # type: ignore[method-assign]


def measure_inprocess(url: str, month: tuple[date, date], now: datetime, reps: int, profile: bool) -> dict[str, Any]:
    db = Database(make_engine(Settings(database_url=url)))
    since = datetime.combine(month[0], datetime.min.time(), UTC)
    until = datetime.combine(month[1], datetime.min.time(), UTC)
    adapter = TypeAdapter(Metrics)
    out: dict[str, Any] = {}
    for name, params in VARIANTS:
        if "limit" in params and not _pages():
            continue
        paging = {"limit": int(params["limit"]) + 1} if "limit" in params else {}  # + 1: as the route asks
        runs: list[dict[str, float]] = []
        for rep in range(reps + 1):  # the first is a warm-up
            with db.transaction(write=False) as s:
                timer = TimedSession(s)
                t0 = time.perf_counter()
                rows = service.compute(session=s, since=since, until=until, now=now,
                                       group_by=params.get("group_by", "none"),  # type: ignore[arg-type]
                                       interval=params.get("interval", "none"), **paging)  # type: ignore[arg-type]
                t1 = time.perf_counter()
            head = {"since": month[0].isoformat(), "until": month[1].isoformat(),
                    "group_by": params.get("group_by", "none"), "interval": params.get("interval", "none")}
            if hasattr(routes, "render"):  # the route writes the dicts as they are
                t2 = time.perf_counter()
                body = routes.render(head | {"rows": rows, "next_cursor": None})
            else:  # the route built the model, FastAPI serialised it
                model = Metrics(**head, rows=rows)  # type: ignore[arg-type]
                t2 = time.perf_counter()
                body = adapter.dump_json(adapter.validate_python(model, from_attributes=True))
            t3 = time.perf_counter()
            if rep:
                runs.append({"sql": timer.seconds, "python": t1 - t0 - timer.seconds, "model": t2 - t1,
                             "json": t3 - t2, "total": t3 - t0, "statements": timer.statements})
        out[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {
            "rows": len(rows), "bytes": len(body)}
        if profile and name == "by technician":
            prof = cProfile.Profile()
            with db.transaction(write=False) as s:
                prof.enable()
                rows = service.compute(session=s, since=since, until=until, now=now, group_by="technician")
                adapter.dump_json(Metrics(since="", until="", group_by="technician", interval="none", rows=rows))  # type: ignore[arg-type]
                prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            out["profile"] = buf.getvalue()
    with db.transaction(write=False) as s:
        out["month_jobs"] = s.scalar(text("SELECT COUNT(*) FROM job WHERE reported_at >= :a AND reported_at < :b"),
                                     {"a": sla._bind(db, since), "b": sla._bind(db, until)})
        out["jobs"] = s.scalar(text("SELECT COUNT(*) FROM job"))
    db.dispose()
    return out


def measure_http(url: str, month: tuple[date, date], reps: int, data_dir: Path) -> dict[str, Any]:
    server = intake.start_server(["dispatch.app:create_app", "--factory"], env=intake.app_env(url, data_dir),
                                 log=data_dir / "server.log")
    out: dict[str, Any] = {}
    try:
        key = intake.dispatcher_key(server)
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers={"Authorization": f"Bearer {key}"},
                          timeout=300) as client:
            for name, params in VARIANTS:
                if "limit" in params and not _pages():
                    continue
                q = {"since": month[0].isoformat(), "until": month[1].isoformat(), **params}
                times = []
                for rep in range(reps + 1):
                    t0 = time.perf_counter()
                    r = client.get("/v1/metrics", params=q)
                    r.raise_for_status()
                    if rep:
                        times.append(time.perf_counter() - t0)
                out[name] = {"p50": statistics.median(times), "min": min(times), "bytes": len(r.content)}
    finally:
        server.stop()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqlite", help="SQLite file")
    p.add_argument("--pg-url", help="PostgreSQL database (empty, for --build)")
    p.add_argument("--build", action="store_true", help="write the data set first")
    p.add_argument("--month-jobs", type=int, default=80_000)
    p.add_argument("--technicians", type=int, default=5_000)
    p.add_argument("--days", type=float, default=120,
                   help="finished jobs are reported over this many days before now (the month's share of the table)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-http", action="store_true")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--label", default="")
    p.add_argument("--out", help="append the results (JSON lines) to this file")
    args = p.parse_args()
    urls = {d: u for d, u in (("sqlite", f"sqlite:///{args.sqlite}" if args.sqlite else None),
                              ("postgresql", args.pg_url)) if u}
    state = Path(args.sqlite or tempfile.gettempdir()).with_suffix(".now")
    if args.build:
        now = datetime.now(UTC).replace(microsecond=0)
        build(urls, month_jobs=args.month_jobs, technicians=args.technicians, days=args.days, seed=args.seed, now=now, say=print)
        state.write_text(now.isoformat())
    now = datetime.fromisoformat(state.read_text()) if state.exists() else datetime.now(UTC)
    month = sla.metrics_month(now)
    print(f"dispatch from {Path(dispatch.__file__).parent}; month {month[0]} to {month[1]}")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    for dialect, url in urls.items():
        meter = CpuMeter().start()
        result: dict[str, Any] = {"label": args.label, "db": dialect, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                  "code": str(Path(dispatch.__file__).parent)}
        result["inprocess"] = measure_inprocess(url, month, now, args.reps, args.profile)
        if not args.no_http:
            result["http"] = measure_http(url, month, args.reps, data_dir)
        result["machine_busy_cores"] = meter.stop()
        ip = result["inprocess"]
        print(f"\n{args.label} {dialect}: {ip['month_jobs']:,} jobs in the month ({ip['jobs']:,} in all); "
              f"machine busy {result['machine_busy_cores']:.2f} cores")
        print("| variant | rows | statements | sql ms | python ms | model ms | json ms | in-process ms | HTTP p50 ms | bytes |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, _ in VARIANTS:
            if name not in ip:
                continue
            v = ip[name]
            h = result.get("http", {}).get(name, {})
            print(f"| {name} | {v['rows']:,} | {v['statements']:.0f} | {v['sql'] * 1000:,.0f} | {v['python'] * 1000:,.0f} | "
                  f"{v['model'] * 1000:,.0f} | {v['json'] * 1000:,.0f} | {v['total'] * 1000:,.0f} | "
                  f"{h.get('p50', float('nan')) * 1000:,.0f} | {h.get('bytes', v['bytes']):,} |")
        if "profile" in ip:
            print(ip["profile"])
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
