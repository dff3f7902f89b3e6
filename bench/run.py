"""Dispatch benchmarks: selection (nearest available technician), intake (POST /v1/jobs) and
parts (POST /v1/jobs/{id}/parts; 1,000 backorders filled by one receipt) and sla (issue 4: the
at-risk queue, the watcher and the KPIs over 1,000,000 jobs).

    .venv/bin/python bench/run.py --quick      # smoke run: small N, few queries, short loads
    .venv/bin/python bench/run.py              # the full run (N = 1,000 / 10,000 / 100,000)
    .venv/bin/python bench/run.py --only parts # one section (selection, intake, parts, sla; comma-separated)

Everything is measured in one run, on SQLite and on PostgreSQL, so the ratios in the tables
compare numbers taken on the same (shared, noisy) machine minutes apart. Raw results go to
bench/results/<time>.json; the tables go to the terminal and, for a full run of every section
(or with --write-docs), between the markers in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import datagen
import intake
import parts
import report
import selection
import sla
from rich.console import Console
from sqlalchemy import create_engine, make_url, text
from stats import CpuMeter

from dispatch.config import Settings
from dispatch.database import migrate
from dispatch.database.core import Database, make_engine

# Wide enough for the tables when the output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 240)
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: N = 1,000 and 5,000, 60 queries, 3 s loads")
    p.add_argument(
        "--pg-url", default=DEFAULT_PG, help="a PostgreSQL server to create scratch databases on (default: %(default)s)"
    )
    p.add_argument("--dbs", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    p.add_argument("--sizes", default=None, help="comma-separated N (default 1000,10000,100000; quick 1000,5000)")
    p.add_argument("--layouts", default="uniform,clustered")
    p.add_argument("--queries", type=int, default=None, help="selection queries per data set (default 300; quick 60)")
    p.add_argument("--skip-selection", action="store_true")
    p.add_argument("--skip-intake", action="store_true")
    p.add_argument("--skip-parts", action="store_true")
    p.add_argument("--skip-sla", action="store_true")
    p.add_argument(
        "--only", default=None, help="run only these sections: comma-separated selection, intake, parts, sla"
    )
    p.add_argument(
        "--intake-seconds", type=float, default=None, help="measured seconds per server (default 15; quick 3)"
    )
    p.add_argument("--intake-technicians", type=int, default=None, help="default 10,000; quick 2,000")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument(
        "--parts-seconds",
        type=float,
        default=None,
        help="parts: measured seconds per reservation workload (default 15; quick 3)",
    )
    p.add_argument("--parts-clients", type=int, default=8, help="parts: concurrent reservation clients")
    p.add_argument(
        "--parts-jobs",
        type=int,
        default=None,
        help="parts: jobs prepared per reservation workload (default 5,000; quick 1,000)",
    )
    p.add_argument(
        "--backorders", type=int, default=None, help="parts: backorders one receipt fills (default 1,000; quick 200)"
    )
    p.add_argument(
        "--backorder-receipts",
        type=int,
        default=None,
        help="parts: receipts measured per database and location, each on fresh backorders (default 3; quick 1)",
    )
    p.add_argument("--receipt-at", default="branch,central", help="parts: where the receipt lands: branch, central")
    p.add_argument(
        "--sla-jobs",
        type=int,
        default=None,
        help="sla: jobs in the database, a tenth of them open (default 1,000,000; quick 100,000)",
    )
    p.add_argument(
        "--sla-backlog-minutes",
        type=float,
        default=10.0,
        help="sla: checkpoints that came due in this many minutes before now are left for the watcher",
    )
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument(
        "--write-docs",
        action="store_true",
        help="also write docs/benchmarks.md after a quick run or a run of some sections only",
    )
    p.add_argument("--no-docs", action="store_true", help="never write docs/benchmarks.md")
    p.add_argument("--keep", action="store_true", help="keep the scratch databases and files")
    args = p.parse_args()
    sections = {"selection", "intake", "parts", "sla"}
    if args.only:
        chosen = {x.strip() for x in args.only.split(",") if x.strip()}
        if chosen - sections:
            p.error(f"--only takes {', '.join(sorted(sections))}")
        for name in sections - chosen:
            setattr(args, f"skip_{name}", True)
    return args


def naive_limit(n: int, queries: int) -> int:
    """The naive approach measures every technician with the skill: cap its queries at large N."""
    if n >= 100_000:
        return min(queries, 30)
    if n >= 10_000:
        return min(queries, 100)
    return queries


class Scratch:
    """Scratch databases: SQLite files in a temporary folder, PostgreSQL databases on --pg-url."""

    def __init__(self, pg_url: str, keep: bool) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
        self.pg_base = make_url(pg_url).set(drivername="postgresql+psycopg")
        self.pg_names: list[str] = []
        self.keep = keep

    def sqlite(self, name: str) -> str:
        return f"sqlite:///{self.dir / (name + '.sqlite3')}"

    def postgres(self, name: str) -> str:
        admin = create_engine(self.pg_base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.pg_names.append(name)
        return self.pg_base.set(database=name).render_as_string(hide_password=False)

    def cleanup(self) -> None:
        if self.keep:
            console.print(f"[yellow]kept[/] {self.dir} and databases {self.pg_names}")
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.pg_names:
            admin = create_engine(self.pg_base, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                for name in self.pg_names:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


# --------------------------------------------------------------------------- selection


def run_selection(args: argparse.Namespace, scratch: Scratch, sizes: list[int], queries: int) -> list[dict[str, Any]]:
    dbs = [d.strip() for d in args.dbs.split(",") if d.strip()]
    urls = {}
    for dialect in dbs:
        url = scratch.sqlite("selection") if dialect == "sqlite" else scratch.postgres("dispatch_bench")
        migrate.upgrade(Settings(database_url=url))
        urls[dialect] = url
    if "postgresql" in urls:
        engine = make_engine(Settings(database_url=urls["postgresql"]))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for statement in selection.GIST_SETUP[:3]:  # extensions; the index comes after loading
                conn.execute(text(statement))
        engine.dispose()
    rows: list[dict[str, Any]] = []
    for layout in [x.strip() for x in args.layouts.split(",") if x.strip()]:
        points = datagen.queries(queries, layout, args.seed)
        warmup = datagen.queries(20, layout, args.seed + 1)
        for n in sizes:
            t0 = time.perf_counter()
            techs = datagen.technicians(n, layout, args.seed)
            t1 = time.perf_counter()
            expected = selection.oracle(techs, points)
            t2 = time.perf_counter()
            console.print(
                f"[bold]{layout} N={n:,}[/]: generated in {t1 - t0:.1f} s, oracle for "
                f"{len(points)} queries in {t2 - t1:.1f} s "
                f"({sum(e[0] is None for e in expected)} with nobody available)"
            )
            for dialect, url in urls.items():
                settings = Settings(database_url=url)
                engine = make_engine(settings)
                t0 = time.perf_counter()
                datagen.load(engine, techs)
                if dialect == "postgresql":
                    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                        for statement in selection.GIST_SETUP[3:]:
                            conn.execute(text(statement))
                t1 = time.perf_counter()
                db = Database(engine)
                meter = CpuMeter().start()
                results = selection.measure(
                    db=db,
                    settings=settings,
                    dialect=dialect,
                    layout=layout,
                    n=n,
                    queries=points,
                    expected=expected,
                    naive_limit=naive_limit(n, queries),
                    with_gist=dialect == "postgresql",
                    warmup=warmup,
                )
                busy = meter.stop()
                t2 = time.perf_counter()
                db.dispose()
                for r in results:
                    row = r.row()
                    row["load_s"] = t1 - t0
                    row["machine_busy_cores"] = busy
                    rows.append(row)
                svc = next(r for r in results if r.approach == "service")
                s = svc.row()
                console.print(
                    f"  {dialect:10s} loaded in {t1 - t0:5.1f} s, measured in {t2 - t1:5.1f} s: "
                    f"service p50 {s['p50_ms']:.2f} ms p99 {s['p99_ms']:.2f} ms, "
                    f"agree {svc.agree}/{svc.checked}"
                )
            del techs
    return rows


# --------------------------------------------------------------------------- intake


def run_intake(args: argparse.Namespace, scratch: Scratch, n_techs: int, seconds: float) -> list[dict[str, Any]]:
    dbs = [d.strip() for d in args.dbs.split(",") if d.strip()]
    warmup = 1.0 if args.quick else 3.0
    techs = datagen.technicians(n_techs, "clustered", args.seed, capacity=(500, 1000))
    bodies = intake.job_bodies(5000, args.seed)
    logs = scratch.dir / "logs"
    logs.mkdir(exist_ok=True)

    # One seeded SQLite template, copied for each SQLite server so each starts from the same state.
    template = None
    if "sqlite" in dbs:
        template_url = scratch.sqlite("intake-template")
        migrate.upgrade(Settings(database_url=template_url))
        engine = make_engine(Settings(database_url=template_url))
        datagen.load(engine, techs)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        template = Path(make_url(template_url).database)  # type: ignore[arg-type]

    configs: list[tuple[str, str, dict[str, str]]] = []  # (label, kind, env)
    for dialect in dbs:
        if dialect == "sqlite":
            for sync in ("FULL", "NORMAL"):
                configs.append((f"sqlite synchronous={sync}", "sqlite", {"synchronous": sync}))
        else:
            configs.append(("postgresql", "postgresql", {}))

    rows: list[dict[str, Any]] = []
    bare_body = bodies  # the same JSON bodies; the bare model accepts them
    for label, kind, opts in configs:
        # The bare endpoint right before each app run: its ratio uses the nearest measurement.
        bare = intake.start_server(["bare_app:app", "--app-dir", str(BENCH_DIR)], env={}, log=logs / "bare.log")
        try:
            b = intake.run_load(bare, "/v1/jobs", {}, bare_body, clients=args.clients, warmup=warmup, duration=seconds)
        finally:
            bare.stop()
        brow = b.row() | {"server": "bare FastAPI", "pair": label}
        rows.append(brow)

        if kind == "sqlite":
            path = scratch.dir / f"intake-{opts['synchronous'].lower()}.sqlite3"
            shutil.copyfile(template, path)  # type: ignore[arg-type]
            url = f"sqlite:///{path}"
            env = intake.app_env(url, scratch.dir, opts["synchronous"])
        else:
            url = scratch.postgres("dispatch_bench_intake")
            migrate.upgrade(Settings(database_url=url))
            engine = make_engine(Settings(database_url=url))
            datagen.load(engine, techs)
            engine.dispose()
            env = intake.app_env(url, scratch.dir)
        server = intake.start_server(
            ["dispatch.app:create_app", "--factory"],
            env=env,
            log=logs / f"app-{kind}-{opts.get('synchronous', 'pg')}.log",
        )
        try:
            key = intake.dispatcher_key(server)
            a = intake.run_load(
                server,
                "/v1/jobs",
                {"Authorization": f"Bearer {key}"},
                bodies,
                clients=args.clients,
                warmup=warmup,
                duration=seconds,
            )
            # The same server and data, every request with a fresh Idempotency-Key.
            k = intake.run_load(
                server,
                "/v1/jobs",
                {"Authorization": f"Bearer {key}"},
                bodies,
                clients=args.clients,
                warmup=warmup,
                duration=seconds,
                idempotency_keys=True,
            )
        finally:
            server.stop()
        arow = a.row() | {"server": f"app, {label}", "pair": label, "bare_rps": brow["rps"]}
        arow["ratio"] = arow["rps"] / brow["rps"] if brow["rps"] else float("nan")
        rows.append(arow)
        krow = k.row() | {
            "server": f"app + Idempotency-Key, {label}",
            "pair": label,
            "bare_rps": brow["rps"],
            "idempotency_keys": True,
        }
        krow["ratio"] = krow["rps"] / brow["rps"] if brow["rps"] else float("nan")
        rows.append(krow)
        console.print(
            f"  {label:28s} app {arow['rps']:7.1f} rps p99 {arow['p99_ms']:6.1f} ms "
            f"errors {arow['errors']} | with Idempotency-Key {krow['rps']:7.1f} rps "
            f"p99 {krow['p99_ms']:6.1f} ms errors {krow['errors']} "
            f"| bare {brow['rps']:7.1f} rps p99 {brow['p99_ms']:6.1f} ms | ratio {arow['ratio']:.3f}"
        )
    return rows


# --------------------------------------------------------------------------- parts


def run_parts(args: argparse.Namespace, scratch: Scratch) -> dict[str, Any]:
    dbs = [d.strip() for d in args.dbs.split(",") if d.strip()]
    cfg = {
        "clients": args.parts_clients,
        "seconds": args.parts_seconds or (3.0 if args.quick else 15.0),
        "warmup": 1.0 if args.quick else 3.0,
        "jobs_per_workload": args.parts_jobs or (1000 if args.quick else 5000),
        # Scarce stock: enough that the runs see all three outcomes (own or other branch, shipped, backorder).
        "scarce_per_branch": 2 if args.quick else 10,
        "scarce_central": 10 if args.quick else 50,
        "backorders": args.backorders or (200 if args.quick else 1000),
        "receipts": args.backorder_receipts or (1 if args.quick else 3),
        "receipt_at": [
            parts.CENTRAL[0] if x.strip() == "central" else "WAW" for x in args.receipt_at.split(",") if x.strip()
        ],
    }
    logs = scratch.dir / "logs"
    logs.mkdir(exist_ok=True)
    say = console.print
    reservation: list[dict[str, Any]] = []
    backorders: list[dict[str, Any]] = []
    for dialect in dbs:
        url = scratch.sqlite("parts") if dialect == "sqlite" else scratch.postgres("dispatch_bench_parts")
        reservation += parts.run_reservation(
            dialect=dialect,
            url=url,
            data_dir=scratch.dir,
            logs=logs,
            seed=args.seed,
            clients=cfg["clients"],
            warmup=cfg["warmup"],
            seconds=cfg["seconds"],
            jobs_per_workload=cfg["jobs_per_workload"],
            scarce_per_branch=cfg["scarce_per_branch"],
            scarce_central=cfg["scarce_central"],
            say=say,
        )
    for dialect in dbs:
        make = scratch.sqlite if dialect == "sqlite" else (lambda name: scratch.postgres("dispatch_bench_" + name))
        backorders += parts.run_backorders(
            dialect=dialect,
            make_url=make,
            data_dir=scratch.dir,
            logs=logs,
            seed=args.seed,
            count=cfg["backorders"],
            reps=cfg["receipts"],
            where=cfg["receipt_at"],
            say=say,
        )
    return {
        "config": cfg,
        "reservation": reservation,
        "backorder_receipts": backorders,
        "backorders": parts.summarise_backorders(backorders),
    }


# --------------------------------------------------------------------------- sla


def run_sla(args: argparse.Namespace, scratch: Scratch) -> dict[str, Any]:
    dbs = [d.strip() for d in args.dbs.split(",") if d.strip()]
    urls = {d: scratch.sqlite("sla") if d == "sqlite" else scratch.postgres("dispatch_bench_sla") for d in dbs}
    logs = scratch.dir / "logs"
    logs.mkdir(exist_ok=True)
    return sla.run(
        urls=urls,
        data_dir=scratch.dir,
        logs=logs,
        seed=args.seed,
        jobs=args.sla_jobs or (100_000 if args.quick else 1_000_000),
        quick=args.quick,
        backlog_minutes=args.sla_backlog_minutes,
        say=console.print,
    )


# --------------------------------------------------------------------------- main


def main() -> int:
    args = parse_args()
    sizes = (
        [int(x) for x in args.sizes.split(",")]
        if args.sizes
        else ([1000, 5000] if args.quick else [1000, 10_000, 100_000])
    )
    queries = args.queries or (60 if args.quick else 300)
    seconds = args.intake_seconds or (3.0 if args.quick else 15.0)
    n_intake = args.intake_technicians or (2000 if args.quick else 10_000)
    scratch = Scratch(args.pg_url, args.keep)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": report.machine_facts(args.pg_url),
        "sizes": sizes,
        "queries": queries,
        "intake": {"technicians": n_intake, "seconds": seconds, "clients": args.clients},
        "selection": [],
        "intake_rows": [],
        "parts": None,
        "sla": None,
    }
    try:
        if not args.skip_selection:
            console.rule("selection")
            results["selection"] = run_selection(args, scratch, sizes, queries)
        if not args.skip_intake:
            console.rule("intake")
            results["intake_rows"] = run_intake(args, scratch, n_intake, seconds)
        if not args.skip_parts:
            console.rule("parts")
            results["parts"] = run_parts(args, scratch)
        if not args.skip_sla:
            console.rule("sla")
            results["sla"] = run_sla(args, scratch)
    finally:
        scratch.cleanup()
    results["elapsed_s"] = time.perf_counter() - t0
    out_dir = BENCH_DIR / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{results['mode']}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    report.print_tables(console, results)
    every_section = not (args.skip_selection or args.skip_intake or args.skip_parts)
    if results["sla"] and not args.no_docs and (not args.quick or args.write_docs):
        # The SLA tables have a block of their own, so a run of that section alone may write it.
        report.write_sla_docs(results, BENCH_DIR.parent / "docs" / "benchmarks.md")
        console.print("[green]wrote[/] the SLA block of docs/benchmarks.md")
    other_sections = not (args.skip_selection and args.skip_intake and args.skip_parts)
    if other_sections and not args.no_docs and ((not args.quick and every_section) or args.write_docs):
        report.write_docs(results, BENCH_DIR.parent / "docs" / "benchmarks.md")
        console.print("[green]wrote[/] docs/benchmarks.md")
    elif not args.no_docs and not args.quick:
        console.print(
            "[yellow]docs/benchmarks.md not written[/]: only some sections ran (--write-docs to write anyway)"
        )
    console.print(f"raw results: {out.relative_to(BENCH_DIR.parent)}; {results['elapsed_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
