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
  ``metrics.service.render`` of the dicts;

and over HTTP against ``python -m uvicorn dispatch.app:create_app --factory`` (p50 of ``--reps``).

    .venv/bin/python bench/metrics.py --build --sqlite /tmp/m.sqlite3 --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_metrics
    .venv/bin/python bench/metrics.py --sqlite /tmp/m.sqlite3 --pg-url ... --label after --out results.json

    git archive <commit> src | tar -x -C /tmp/before     # a "before": measured in turns with this checkout
    .venv/bin/python bench/metrics.py --sqlite /tmp/m.sqlite3 --pg-url ... --before /tmp/before/src --before-label <commit> --label <commit>

``--build`` writes the databases (the PostgreSQL one must exist and be empty); without it the
same databases are measured again. With ``--before`` the two codes take turns, request by
request (in-process: its ``metrics/service.py`` loaded beside this one; over HTTP: a second server
with that ``src`` first on ``PYTHONPATH``), so both see the same load on a shared machine.
``--profile`` prints a cProfile of the grouped ``compute``.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import importlib.util
import inspect
import io
import json
import pstats
import random
import shutil
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
    age = lambda d: (now - datetime.combine(d, datetime.min.time(), UTC)).total_seconds()
    return since, until, age(until), age(since)


def build(
    urls: dict[str, str],
    *,
    month_jobs: int,
    technicians: int,
    days: float,
    seed: int,
    now: datetime,
    say: Callable[[str], None],
) -> dict[str, Any]:
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
            conn.execute(
                insert(Outlet.__table__),
                [  # type: ignore[attr-defined]
                    {"id": i, "code": f"OUT-{i:04d}", "name": f"Outlet {i}", "created_at": now - timedelta(days=400)}
                    for i in range(1, sla.OUTLETS + 1)
                ],
            )
            conn.execute(
                text("UPDATE technician SET home_branch = :b WHERE id = :id"),
                [{"b": b, "id": i} for i, b in sk.branch.items()],
            )
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
                on_site = (
                    job["arrived_at"]
                    if number == 1
                    else job["arrived_at"] + (job["completed_at"] - job["arrived_at"]) / 2
                )
                left = on_site + timedelta(minutes=rng.uniform(20, 90))
                visits.append(
                    {
                        "id": visit_id,
                        "job_id": job["id"],
                        "number": number,
                        "technician_id": job["technician_id"],
                        "reason": "first" if number == 1 else "follow_up",
                        "planned_at": on_site - timedelta(hours=1),
                        "en_route_at": on_site - timedelta(minutes=30),
                        "on_site_at": on_site,
                        "left_at": left,
                        "outcome": "fixed" if number == n else "needs_parts",
                        "note": None,
                        "created_by": "dispatcher:1",
                    }
                )
            if rng.random() < 0.33:
                for attempt in range(1, (3 if rng.random() < 0.2 else 1) + 1):
                    callback_id += 1
                    reached = attempt == 3 or rng.random() < 0.7
                    calls.append(
                        {
                            "id": callback_id,
                            "job_id": job["id"],
                            "visit_id": visit_id,
                            "attempt": attempt,
                            "reached": reached,
                            "fixed": True if reached else None,
                            "satisfaction": rng.randint(1, 5) if reached else None,
                            "note": None,
                            "retry_after": None,
                            "called_at": job["completed_at"] + timedelta(days=attempt),
                            "called_by": "dispatcher:1",
                        }
                    )
                    if reached:
                        break
        for sink in sinks.values():
            sink.write("job", rows)
            sink.write("visit", visits)
            sink.write("job_callback", calls)
        counts["jobs"] += len(rows)
        counts["visits"] += len(visits)
        counts["callbacks"] += len(calls)
    for sink in sinks.values():
        sla.finish_bulk_load(sink.engine, ("job", "visit", "job_callback", "outlet"))
        sink.engine.dispose()
    say(f"built {counts} with {technicians:,} technicians in {time.perf_counter() - t0:.0f} s")
    return counts | {"technicians": technicians, "now": now.isoformat()}


VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("ungrouped", {}),
    ("by day", {"interval": "day"}),
    ("by technician", {"group_by": "technician"}),
    ("by technician, limit=100", {"group_by": "technician", "limit": "100"}),
]


@dataclasses.dataclass
class Code:
    """A version of ``dispatch.metrics`` to measure: this checkout's, or another ``src`` directory's
    (``--before``: its service module loaded beside this one's; its server run with it first on
    ``PYTHONPATH``)."""

    label: str
    src: Path | None = None

    def __post_init__(self) -> None:
        if self.src is None:
            self.service: Any = service
            texts = Path(routes.__file__).read_text() + Path(service.__file__).read_text()
        else:
            path = self.src / "dispatch" / "metrics" / "service.py"
            spec = importlib.util.spec_from_file_location(f"bench_metrics_service_{id(self)}", path)
            assert spec and spec.loader
            self.service = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = self.service
            spec.loader.exec_module(self.service)
            texts = path.read_text() + (self.src / "dispatch" / "metrics" / "routes.py").read_text()
        # Whether the route writes the dicts (``render``, in routes.py before it moved to the
        # service) or builds the model for FastAPI.
        self.renders = "def render(" in texts
        self.pages = "limit" in inspect.signature(self.service.compute).parameters


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


def measure_inprocess(
    url: str, month: tuple[date, date], now: datetime, reps: int, profile: bool, codes: list[Code]
) -> dict[str, Any]:
    """Each variant ``reps`` times (after a warm-up), the codes taking turns, so they share the load."""
    db = Database(make_engine(Settings(database_url=url)))
    since = datetime.combine(month[0], datetime.min.time(), UTC)
    until = datetime.combine(month[1], datetime.min.time(), UTC)
    adapter = TypeAdapter(Metrics)
    out: dict[str, Any] = {code.label: {} for code in codes}
    for name, params in VARIANTS:
        runs: dict[str, list[dict[str, float]]] = {code.label: [] for code in codes}
        for rep in range(reps + 1):  # the first is a warm-up
            for code in codes:
                if "limit" in params and not code.pages:
                    continue
                paging = {"limit": int(params["limit"]) + 1} if "limit" in params else {}  # + 1: as the route asks
                with db.transaction(write=False) as s:
                    timer = TimedSession(s)
                    t0 = time.perf_counter()
                    rows = code.service.compute(
                        session=s,
                        since=since,
                        until=until,
                        now=now,
                        group_by=params.get("group_by", "none"),
                        interval=params.get("interval", "none"),
                        **paging,
                    )
                    t1 = time.perf_counter()
                head = {
                    "since": month[0].isoformat(),
                    "until": month[1].isoformat(),
                    "group_by": params.get("group_by", "none"),
                    "interval": params.get("interval", "none"),
                }
                if code.renders:  # the route writes the dicts as they are
                    t2 = time.perf_counter()
                    body = service.render(head | {"rows": rows, "next_cursor": None})
                else:  # the route built the model, FastAPI serialised it
                    model = Metrics(**head, rows=rows)  # type: ignore[arg-type]
                    t2 = time.perf_counter()
                    body = adapter.dump_json(adapter.validate_python(model, from_attributes=True))
                t3 = time.perf_counter()
                if rep:
                    runs[code.label].append(
                        {
                            "sql": timer.seconds,
                            "python": t1 - t0 - timer.seconds,
                            "model": t2 - t1,
                            "json": t3 - t2,
                            "total": t3 - t0,
                            "statements": timer.statements,
                            "rows": len(rows),
                            "bytes": len(body),
                        }
                    )
        for label, r in runs.items():
            if r:
                out[label][name] = {k: statistics.median(x[k] for x in r) for k in r[0]}
    if profile:
        for code in codes:
            prof = cProfile.Profile()
            with db.transaction(write=False) as s:
                prof.enable()
                code.service.compute(session=s, since=since, until=until, now=now, group_by="technician")
                prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
            out[code.label]["profile"] = buf.getvalue()
    with db.transaction(write=False) as s:
        out["month_jobs"] = s.scalar(
            text("SELECT COUNT(*) FROM job WHERE reported_at >= :a AND reported_at < :b"),
            {"a": sla._bind(db, since), "b": sla._bind(db, until)},
        )
        out["jobs"] = s.scalar(text("SELECT COUNT(*) FROM job"))
    db.dispose()
    return out


def measure_http(url: str, month: tuple[date, date], reps: int, data_dir: Path, codes: list[Code]) -> dict[str, Any]:
    """One server per code, the requests taking turns."""
    servers, clients = {}, {}
    out: dict[str, Any] = {code.label: {} for code in codes}
    try:
        for i, code in enumerate(codes):
            (data_dir / str(i)).mkdir(exist_ok=True)
            env = intake.app_env(url, data_dir / str(i))
            if code.src is not None:
                env["PYTHONPATH"] = str(code.src)
            servers[code.label] = server = intake.start_server(
                ["dispatch.app:create_app", "--factory"], env=env, log=data_dir / f"server-{i}.log"
            )
            key = intake.dispatcher_key(server)
            clients[code.label] = httpx.Client(
                base_url=f"http://127.0.0.1:{server.port}", headers={"Authorization": f"Bearer {key}"}, timeout=300
            )
        for name, params in VARIANTS:
            q = {"since": month[0].isoformat(), "until": month[1].isoformat(), **params}
            times: dict[str, list[float]] = {code.label: [] for code in codes}
            size = {}
            for rep in range(reps + 1):
                for code in codes:
                    if "limit" in params and not code.pages:
                        continue
                    t0 = time.perf_counter()
                    r = clients[code.label].get("/v1/metrics", params=q)
                    r.raise_for_status()
                    if rep:
                        times[code.label].append(time.perf_counter() - t0)
                    size[code.label] = len(r.content)
            for label, t in times.items():
                if t:
                    out[label][name] = {"p50": statistics.median(t), "min": min(t), "bytes": size[label]}
    finally:
        for client in clients.values():
            client.close()
        for server in servers.values():
            server.stop()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqlite", help="SQLite file")
    p.add_argument("--pg-url", help="PostgreSQL database (empty, for --build)")
    p.add_argument("--build", action="store_true", help="write the data set first")
    p.add_argument("--month-jobs", type=int, default=80_000)
    p.add_argument("--technicians", type=int, default=5_000)
    p.add_argument(
        "--days",
        type=float,
        default=120,
        help="finished jobs are reported over this many days before now (the month's share of the table)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-http", action="store_true")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--label", default="", help="what to call this checkout's code in the tables")
    p.add_argument("--before", help="another checkout's src directory, measured in turns with this one")
    p.add_argument("--before-label", default="before")
    p.add_argument("--out", help="append the results (JSON lines) to this file")
    args = p.parse_args()
    urls = {
        d: u
        for d, u in (("sqlite", f"sqlite:///{args.sqlite}" if args.sqlite else None), ("postgresql", args.pg_url))
        if u
    }
    state = Path(args.sqlite or tempfile.gettempdir()).with_suffix(".now")
    if args.build:
        now = datetime.now(UTC).replace(microsecond=0)
        build(
            urls,
            month_jobs=args.month_jobs,
            technicians=args.technicians,
            days=args.days,
            seed=args.seed,
            now=now,
            say=print,
        )
        state.write_text(now.isoformat())
    now = datetime.fromisoformat(state.read_text()) if state.exists() else datetime.now(UTC)
    month = sla.metrics_month(now)
    print(f"dispatch from {Path(dispatch.__file__).parent}; month {month[0]} to {month[1]}")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    codes = ([Code(f"before ({args.before_label})", Path(args.before))] if args.before else []) + [
        Code(args.label or "this")
    ]
    for dialect, url in urls.items():
        meter = CpuMeter().start()
        at = datetime.now(UTC).isoformat(timespec="seconds")
        ip = measure_inprocess(url, month, now, args.reps, args.profile, codes)
        http = {} if args.no_http else measure_http(url, month, args.reps, data_dir, codes)
        busy = meter.stop()
        print(
            f"\n{dialect} at {at}: {ip['month_jobs']:,} jobs in the month ({ip['jobs']:,} in all); "
            f"machine busy {busy:.2f} cores"
        )
        print(
            "| code | variant | rows | sql ms | python ms | model ms | json ms | in-process ms | HTTP p50 ms | bytes |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, _ in VARIANTS:
            for code in codes:
                v = ip[code.label].get(name)
                if v is None:
                    continue
                h = http.get(code.label, {}).get(name, {})
                print(
                    f"| {code.label} | {name} | {v['rows']:,.0f} | {v['sql'] * 1000:,.0f} | {v['python'] * 1000:,.0f} | "
                    f"{v['model'] * 1000:,.0f} | {v['json'] * 1000:,.0f} | {v['total'] * 1000:,.0f} | "
                    f"{h.get('p50', float('nan')) * 1000:,.0f} | {h.get('bytes', v['bytes']):,.0f} |"
                )
        for code in codes:
            if "profile" in ip[code.label]:
                print(code.label, ip[code.label]["profile"])
        if args.out:
            with open(args.out, "a") as f:
                f.write(
                    json.dumps(
                        {"db": dialect, "at": at, "inprocess": ip, "http": http, "machine_busy_cores": busy},
                        default=str,
                    )
                    + "\n"
                )
    shutil.rmtree(data_dir, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
