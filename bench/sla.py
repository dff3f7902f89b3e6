"""SLA (issue 4): the at-risk queue, the watcher and the KPIs over a year of jobs.

A database built by the real migrations is bulk-loaded with ``--sla-jobs`` jobs (default
1,000,000) reported over the twelve months before "now": 90 % finished (completed, 3 %
cancelled), 10 % open, each shaped as ``jobs.service.new`` and ``sla.policies.plan`` shape a job
(the policy's deadlines and checkpoints, computed by ``policies.plan`` itself), with the columns a
year of work leaves behind (arrival, completion, stage seconds, resolution, fired and resolved
checkpoints, acknowledged escalations). Then, on each database:

1. ``GET /v1/sla/at-risk`` against the real app (a ``python -m uvicorn`` subprocess, as in
   ``intake.py``): the first page (limit 50) many times, and a walk through the cursor; and the
   same query in-process (``sla.service.at_risk``) to separate the HTTP overhead;
2. ``GET /v1/metrics`` for one month: ungrouped, ``group_by=technician`` and ``interval=day``,
   over HTTP and in-process (``metrics.service.compute``);
3. the watcher (``sla.watcher.run_pass``): first the predictions a running watcher would already
   have made (timed: the cold start), then passes with a backlog of due checkpoints (as after a
   restart of ``--sla-backlog-minutes``), then steady-state passes with nothing due; the
   ``predict()`` part is timed on its own.

"Now" is the wall clock when the data is generated, because the app's clock is the system
clock; the data is generated relative to it and the HTTP measurements follow within minutes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import datagen
import httpx
import intake
from sqlalchemy import Engine, func, insert, text
from stats import CpuMeter, percentile

from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.config import Settings
from dispatch.database import migrate
from dispatch.database.core import Database, make_engine
from dispatch.jobs.lifecycle import JobStatus
from dispatch.metrics import service as metrics
from dispatch.outlets.models import Outlet
from dispatch.sla import policies, watcher
from dispatch.sla import service as sla_service
from dispatch.sla.models import PolicyName, SlaPolicy

# The targets.
AT_RISK_P50_MAX_MS = 50.0
WATCHER_PASS_MAX_S = 2.0
METRICS_MAX_S = 1.0

DAY = 86_400.0
CHUNK = 20_000
FAULTS = [
    "Drum does not spin",
    "Leaks water",
    "Does not heat",
    "Error code E21",
    "Noisy",
    "Door will not close",
    "No power",
    "Trips the breaker",
    "Display dead",
    "Smells of burning",
]
MODELS = ["WM-100", "RF-220", "DW-45", "OV-60", "TD-8", "MW-20", "AC-35", "BO-24"]
PART_SKUS = ["PUMP-01", "BELT-02", "HEAT-03", "BOARD-04", "SEAL-05", "MOTOR-06"]
OUTLETS = 200


@dataclasses.dataclass(frozen=True)
class Config:
    jobs: int
    open: int
    technicians: int
    seed: int
    now: datetime
    backlog_minutes: float

    @property
    def finished(self) -> int:
        return self.jobs - self.open


# --------------------------------------------------------------------------- the data


def _nearest_city(lat: float, lon: float) -> str:
    return min(datagen.CITIES, key=lambda c: (c[1] - lat) ** 2 + ((c[2] - lon) * math.cos(math.radians(lat))) ** 2)[0]


@dataclasses.dataclass
class Skeleton:
    """Every job's moment of report and what it is now, decided before any row is written."""

    reported: list[float]  # seconds before now, oldest first (job id = index + 1)
    status: dict[int, JobStatus]  # open jobs only, by index
    technician: dict[int, int]  # open jobs holding a technician's capacity
    techs: list[datagen.Tech]
    branch: dict[int, str]


def skeleton(cfg: Config, finished_ages: tuple[float, float] = (3600, 365 * DAY)) -> Skeleton:
    rng = random.Random(f"{cfg.seed}:sla:skeleton")
    # Finished jobs: uniform over the year (the last hour excepted; ``bench/metrics.py`` packs
    # them into fewer weeks); open ones mostly recent: 45 % from the last day, 35 % from the
    # week before, 20 % waiting for weeks (parts, mostly).
    ages = [(rng.uniform(*finished_ages), False) for _ in range(cfg.finished)]
    for _ in range(cfg.open):
        r = rng.random()
        age = (
            rng.uniform(60, DAY)
            if r < 0.45
            else rng.uniform(DAY, 7 * DAY)
            if r < 0.80
            else rng.uniform(7 * DAY, 45 * DAY)
        )
        ages.append((age, True))
    ages.sort(key=lambda a: -a[0])
    techs = datagen.technicians(cfg.technicians, "clustered", cfg.seed, capacity=(3, 8))
    slots = [t.id for t in techs if t.active for _ in range(t.open_jobs)]
    rng.shuffle(slots)
    status: dict[int, JobStatus] = {}
    technician: dict[int, int] = {}
    for i, (age, is_open) in enumerate(ages):
        if not is_open:
            continue
        p_hold = 0.35 if age < DAY else 0.15 if age < 7 * DAY else 0.02
        if slots and rng.random() < p_hold:
            technician[i] = slots.pop()
            status[i] = rng.choices([JobStatus.assigned, JobStatus.en_route, JobStatus.on_site], [0.55, 0.15, 0.30])[0]
        elif age < DAY:
            status[i] = rng.choices(
                [JobStatus.new, JobStatus.waiting_parts, JobStatus.unable, JobStatus.ready], [0.70, 0.20, 0.05, 0.05]
            )[0]
        else:
            status[i] = rng.choices(
                [JobStatus.new, JobStatus.waiting_parts, JobStatus.unable, JobStatus.ready], [0.20, 0.60, 0.10, 0.10]
            )[0]
    held = Counter(technician.values())
    techs = [
        dataclasses.replace(t, open_jobs=held.get(t.id, 0), capacity=max(t.capacity, held.get(t.id, 0))) for t in techs
    ]
    branch = {t.id: _nearest_city(t.lat, t.lon) for t in techs}
    return Skeleton([a for a, _ in ages], status, technician, techs, branch)


def _policies() -> dict[PolicyName, SlaPolicy]:
    return {
        name: SlaPolicy(name=name, updated_at=datetime(2026, 1, 1, tzinfo=UTC), updated_by="bench", **values)
        for name, values in policies.DEFAULTS.items()
    }


class Generator:
    """Rows for jobs ``[start, stop)`` (0-based indexes; id = index + 1), each chunk from its own seed."""

    def __init__(self, cfg: Config, sk: Skeleton) -> None:
        self.cfg, self.sk = cfg, sk
        self.policies = _policies()
        self.tech_by_id = {t.id: t for t in sk.techs}
        self.city_weights = [c[3] for c in datagen.CITIES]
        self.backlog_from = cfg.now - timedelta(minutes=cfg.backlog_minutes)

    def chunk(self, start: int, stop: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        rng = random.Random(f"{self.cfg.seed}:sla:chunk:{start}")
        jobs, checkpoints, pauses = [], [], []
        for i in range(start, stop):
            job, cps, pause = self.job(i, rng)
            jobs.append(job)
            checkpoints += cps
            if pause:
                pauses.append(pause)
        return jobs, checkpoints, pauses

    def job(self, i: int, rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
        now = self.cfg.now
        job_id = i + 1
        reported = now - timedelta(seconds=self.sk.reported[i])
        status = self.sk.status.get(i)
        is_open = status is not None
        tech_id = self.sk.technician.get(i)
        if tech_id is not None:
            tech = self.tech_by_id[tech_id]
            lat, lon = datagen._near(rng, tech.lat, tech.lon, 8.0)
            category = rng.choice(tech.skills)
        else:
            city = rng.choices(datagen.CITIES, weights=self.city_weights)[0]
            lat, lon = datagen._near(rng, city[1], city[2], city[4])
            category = rng.choice(datagen.SKILLS)
        r = rng.random()
        if r < 0.05:
            priority, tier = "emergency", rng.choice(["standard", "express"])
        elif r < 0.20:
            priority, tier = rng.choice(["normal", "high"]), "express"
        else:
            priority, tier = rng.choices(["low", "normal", "high"], [0.2, 0.65, 0.15])[0], "standard"
        name = policies.policy_name_for(*_enums(priority, tier))
        appointment_start = appointment_end = None
        if rng.random() < 0.2 and name is PolicyName.standard:
            appointment_start = reported + timedelta(hours=rng.choice([4, 6, 8, 12, 16]))
            appointment_end = appointment_start + timedelta(hours=2)
        plan = policies.plan(self.policies[name], reported_at=reported, appointment_end=appointment_end)
        outlet_id = rng.randint(1, OUTLETS) if rng.random() < 0.8 else None
        received = reported + timedelta(seconds=rng.uniform(0, 120))
        job: dict[str, Any] = {
            "id": job_id,
            "outlet_id": outlet_id,
            "external_ref": f"ORD-{job_id}" if outlet_id else f"DSP-{job_id}",
            "customer_name": f"Customer {job_id}",
            "customer_phone": "+48 22 555 01 00",
            "customer_address": f"{job_id % 997} Main Street",
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "needs_location": False,
            "product_category": category,
            "product_model": rng.choice(MODELS),
            "product_serial": f"SN{job_id}",
            "product_batch": None,
            "product_purchased_on": None,
            "fault": rng.choice(FAULTS),
            "priority": priority,
            "service_tier": tier,
            "reported_at": reported,
            "received_at": received,
            "due_at": plan.due_at,
            "at_risk_at": plan.at_risk_at,
            "appointment_start": appointment_start,
            "appointment_end": appointment_end,
            "technician_id": None,
            "assigned_at": None,
            "completed_at": None,
            "cancelled_at": None,
            "waiting_for_parts": None,
            "parts_eta": None,
            "predicted_breach": None,
            "sla_policy": name.value,
            "arrival_due_at": plan.arrival_due_at,
            "arrival_at_risk_at": plan.arrival_at_risk_at,
            "arrived_at": None,
            "arrival_missed": False,
            "next_due_at": None,
            "next_at_risk_at": None,
            "urgency": 0 if name is PolicyName.emergency else 1,
            "paused_at": None,
            "created_by": f"outlet:{outlet_id}" if outlet_id else "dispatcher:1",
            "version": 1,
            "resolution_seconds": None,
        }
        stages = dict.fromkeys(("dispatch", "assigned", "travel", "on_site", "parts", "customer"), 0)
        if not is_open:
            end = self._finished(job, rng, reported, stages)
        else:
            end = self._open(job, rng, reported, status, tech_id, stages)
        for stage, seconds in stages.items():
            job[f"seconds_{stage}"] = int(seconds)
        job["status_since"] = job["updated_at"] = end
        # The checkpoints, each fired, resolved or pending as the watcher and the service left them.
        cps = []
        for c in plan.checkpoints:
            row = {
                "job_id": job_id,
                "deadline": c["deadline"].value,
                "level": c["level"].value,
                "ratio": c["ratio"],
                "audience": c["audience"].value,
                "fires_at": c["fires_at"],
                "fired_at": None,
                "resolved_at": None,
                "acknowledged_at": None,
                "acknowledged_by": None,
            }
            done = job["arrived_at"] if c["deadline"].value in ("arrival", "appointment") else None
            done = done or job["completed_at"] or job["cancelled_at"]
            fires = c["fires_at"]
            if done is not None and done <= fires and (done <= now):
                row["resolved_at"] = done
            elif job["paused_at"] is not None and fires > job["paused_at"]:
                pass  # waits for the job to resume
            elif fires <= (self.backlog_from if is_open else now):
                row["fired_at"] = fires + timedelta(seconds=rng.uniform(0, 30))
                if row["fired_at"] < now - timedelta(days=1) or rng.random() < 0.5:
                    row["acknowledged_at"] = min(row["fired_at"] + timedelta(minutes=rng.uniform(1, 240)), now)
                    row["acknowledged_by"] = "supervisor:1" if row["audience"] == "supervisor" else "dispatcher:1"
            cps.append(row)
        pause = None
        if job["paused_at"] is not None:
            pause = {
                "job_id": job_id,
                "reason": "customer_requested_later",
                "note": None,
                "started_at": job["paused_at"],
                "ended_at": None,
                "started_by": "dispatcher:1",
                "ended_by": None,
            }
        return job, cps, pause

    def _finished(
        self, job: dict[str, Any], rng: random.Random, reported: datetime, stages: dict[str, int]
    ) -> datetime:
        now = self.cfg.now
        latest = now - timedelta(seconds=60)
        job["technician_id"] = self.sk.techs[rng.randrange(len(self.sk.techs))].id
        if rng.random() < 0.03:
            job["status"] = JobStatus.cancelled.value
            job["cancelled_at"] = min(reported + timedelta(hours=rng.uniform(0.2, 30)), latest)
            if rng.random() < 0.5:
                job["technician_id"] = None
            else:
                job["assigned_at"] = reported + timedelta(minutes=rng.uniform(2, 10))
            stages["dispatch"] = (job["cancelled_at"] - reported).total_seconds()
            job["version"] = 3
            return job["cancelled_at"]
        job["status"] = JobStatus.completed.value
        late = rng.random() < 0.10
        hours = rng.uniform(24.05, 72) if late else min(rng.lognormvariate(math.log(6), 0.6), 23.9)
        completed = min(reported + timedelta(hours=max(hours, 1.0)), latest)
        if completed <= reported + timedelta(minutes=10):
            completed = reported + (latest - reported) * 0.9
        total = (completed - reported).total_seconds()
        # dispatch, assigned, travel, on site (+ parts, customer sometimes) adding up to the whole
        shares = [rng.uniform(0.02, 0.1), rng.uniform(0.05, 0.4), rng.uniform(0.03, 0.1), rng.uniform(0.1, 0.3)]
        parts = rng.uniform(0.2, 0.6) if rng.random() < 0.15 else 0.0
        customer = rng.uniform(0.05, 0.3) if rng.random() < 0.03 else 0.0
        scale = total / (sum(shares) + parts + customer)
        stages.update(
            dispatch=shares[0] * scale,
            assigned=shares[1] * scale,
            travel=shares[2] * scale,
            on_site=(shares[3]) * scale,
            parts=parts * scale,
            customer=customer * scale,
        )
        job["assigned_at"] = reported + timedelta(seconds=stages["dispatch"])
        arrive_after = stages["dispatch"] + stages["assigned"] + stages["travel"]
        if job["arrival_due_at"] is not None:  # 2 h targets, missed by about 8 %
            arrive_after = rng.uniform(2.0, 3.5) * 3600 if rng.random() < 0.08 else rng.uniform(0.3, 1.95) * 3600
            arrive_after = min(arrive_after, total - 60)
        arrived = reported + timedelta(seconds=arrive_after)
        job["arrived_at"] = arrived
        job["arrival_missed"] = job["arrival_due_at"] is not None and arrived > job["arrival_due_at"]
        job["completed_at"] = completed
        job["resolution_seconds"] = int(total)
        job["version"] = rng.randint(5, 9)
        return completed

    def _open(
        self,
        job: dict[str, Any],
        rng: random.Random,
        reported: datetime,
        status: JobStatus,
        tech_id: int | None,
        stages: dict[str, int],
    ) -> datetime:
        now = self.cfg.now
        age = (now - reported).total_seconds()
        job["status"] = status.value
        job["resolution_seconds"] = None
        if tech_id is not None:
            job["technician_id"] = tech_id
            job["assigned_at"] = reported + timedelta(seconds=age * rng.uniform(0.02, 0.3))
        arrived = None
        if status is JobStatus.on_site or (
            status in (JobStatus.waiting_parts, JobStatus.unable, JobStatus.ready) and rng.random() < 0.6
        ):
            if job["arrival_due_at"] is not None and rng.random() < 0.85:
                after = min(rng.uniform(0.3, 1.95) * 3600, age * 0.9)
            else:
                after = age * rng.uniform(0.2, 0.8)
            arrived = reported + timedelta(seconds=after)
        if status in (JobStatus.waiting_parts, JobStatus.ready):
            eta = now + timedelta(hours=rng.uniform(-12, 72)) if status is JobStatus.waiting_parts else None
            if status is JobStatus.waiting_parts:
                job["waiting_for_parts"] = [
                    {"sku": rng.choice(PART_SKUS), "quantity": 1, "eta": eta.isoformat() if eta else None}
                ]
                job["parts_eta"] = eta
                if eta and eta > job["due_at"]:
                    job["predicted_breach"] = "parts_eta_after_due"
        job["arrived_at"] = arrived
        job["arrival_missed"] = bool(arrived and job["arrival_due_at"] is not None and arrived > job["arrival_due_at"])
        # A few customers asked for a later visit: the clock stopped.
        if status in (JobStatus.new, JobStatus.assigned) and rng.random() < 0.01:
            job["paused_at"] = reported + timedelta(seconds=age * rng.uniform(0.1, 0.9))
        # set_next: arrival until someone is on site, then completion
        if job["arrival_due_at"] is not None and arrived is None:
            job["next_due_at"], job["next_at_risk_at"] = job["arrival_due_at"], job["arrival_at_risk_at"]
        else:
            job["next_due_at"], job["next_at_risk_at"] = job["due_at"], job["at_risk_at"]
        stages["dispatch"] = age * 0.3
        stages["assigned"] = age * 0.3 if tech_id else 0
        stages["parts"] = age * 0.3 if status is JobStatus.waiting_parts else 0
        job["version"] = rng.randint(2, 6)
        return reported + timedelta(seconds=age * rng.uniform(0.5, 0.99))


def _enums(priority: str, tier: str) -> tuple[Any, Any]:
    from dispatch.jobs.models import Priority, ServiceTier

    return Priority(priority), ServiceTier(tier)


# --------------------------------------------------------------------------- loading


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    if isinstance(v, date):
        return v.isoformat()
    return v


def _pg_value(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return v


class Sink:
    """One database being loaded: SQLite through executemany, PostgreSQL through COPY."""

    def __init__(self, dialect: str, engine: Engine) -> None:
        self.dialect, self.engine = dialect, engine
        self.columns: dict[str, list[str]] = {}
        self.seconds = 0.0

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        t0 = time.perf_counter()
        cols = self.columns.setdefault(table, list(rows[0]))
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            if self.dialect == "sqlite":
                marks = ", ".join("?" for _ in cols)
                cur.execute("BEGIN")  # the engine's connections are in autocommit: one transaction per chunk
                cur.executemany(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})",
                    [tuple(_sqlite_value(r[c]) for c in cols) for r in rows],
                )
                cur.execute("COMMIT")
            else:
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for r in rows:
                        copy.write_row(tuple(_pg_value(r[c]) for c in cols))
                raw.commit()
        finally:
            raw.close()
        self.seconds += time.perf_counter() - t0


def load(cfg: Config, sk: Skeleton, urls: dict[str, str], say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Migrate every database, then write the same generated rows to each, chunk by chunk."""
    sinks: dict[str, Sink] = {}
    info: dict[str, dict[str, Any]] = {}
    for dialect, url in urls.items():
        t0 = time.perf_counter()
        migrate.upgrade(Settings(database_url=url))
        engine = make_engine(Settings(database_url=url))
        datagen.load(engine, sk.techs)
        with engine.begin() as conn:
            conn.execute(
                insert(Outlet.__table__),
                [  # type: ignore[attr-defined]
                    {
                        "id": i,
                        "code": f"OUT-{i:04d}",
                        "name": f"Outlet {i}",
                        "created_at": cfg.now - timedelta(days=400),
                    }
                    for i in range(1, OUTLETS + 1)
                ],
            )
            conn.execute(
                text("UPDATE technician SET home_branch = :b WHERE id = :id"),
                [{"b": b, "id": i} for i, b in sk.branch.items()],
            )
        sinks[dialect] = Sink(dialect, engine)
        info[dialect] = {"migrate_s": time.perf_counter() - t0}
    gen = Generator(cfg, sk)
    gen_s = 0.0
    counts = Counter()
    for start in range(0, cfg.jobs, CHUNK):
        t0 = time.perf_counter()
        jobs, cps, pauses = gen.chunk(start, min(start + CHUNK, cfg.jobs))
        gen_s += time.perf_counter() - t0
        counts["jobs"] += len(jobs)
        counts["checkpoints"] += len(cps)
        counts["pauses"] += len(pauses)
        for sink in sinks.values():
            sink.write("job", jobs)
            sink.write("sla_checkpoint", cps)
            sink.write("sla_pause", pauses)
        if (start // CHUNK) % 10 == 9:
            say(
                f"  loaded {start + len(jobs):,} jobs ({gen_s:.0f} s generating, "
                + ", ".join(f"{d} {s.seconds:.0f} s" for d, s in sinks.items())
                + ")"
            )
    for dialect, sink in sinks.items():
        t0 = time.perf_counter()
        finish_bulk_load(sink.engine, ("job", "sla_checkpoint", "sla_pause", "outlet"))
        info[dialect].update(load_s=sink.seconds, finish_s=time.perf_counter() - t0)
        sink.engine.dispose()
    for value in info.values():
        value["generate_s"] = gen_s
        value.update(counts)
    return info


def finish_bulk_load(engine: Any, tables: tuple[str, ...]) -> None:
    """After rows were inserted with their ids: PostgreSQL's sequences move past them and the
    planner gets statistics; SQLite is left as the service leaves it (nothing runs ANALYZE
    there), with the WAL folded in."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                    )
                )
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def describe(url: str, now: datetime) -> dict[str, Any]:
    """What was loaded, counted in the database."""
    engine = make_engine(Settings(database_url=url))
    db = Database(engine)
    out: dict[str, Any] = {}
    with db.transaction(write=False) as s:
        out["jobs_by_status"] = dict(s.execute(text("SELECT status, COUNT(*) FROM job GROUP BY status")).all())
        out["open"] = s.scalar(text("SELECT COUNT(*) FROM job WHERE next_due_at IS NOT NULL"))
        caller = Caller(key_id=1, role=Role.dispatcher)
        out["at_risk_or_breached"] = s.scalar(
            sla_service.jobs.visible(caller)
            .where(sla_service.clock.at_risk_or_breached_sql(now))
            .with_only_columns(func.count())
        )
        out["breached"] = s.scalar(
            sla_service.jobs.visible(caller).where(sla_service.clock.breached_sql(now)).with_only_columns(func.count())
        )
        out["checkpoints"] = s.scalar(text("SELECT COUNT(*) FROM sla_checkpoint"))
        out["pending_checkpoints"] = watcher.pending_count(s)
        out["due_now"] = s.scalar(
            text(
                "SELECT COUNT(*) FROM sla_checkpoint WHERE fired_at IS NULL AND resolved_at IS NULL "
                "AND fires_at <= :now"
            ),
            {"now": _bind(db, now)},
        )
        out["predicted_breach"] = dict(
            s.execute(
                text(
                    "SELECT predicted_breach, COUNT(*) FROM job WHERE predicted_breach IS NOT NULL GROUP BY predicted_breach"
                )
            ).all()
        )
    db.dispose()
    return out


def _bind(db: Database, moment: datetime) -> Any:
    return _sqlite_value(moment) if db.dialect == "sqlite" else moment


# --------------------------------------------------------------------------- measuring


def _timed(fn: Callable[[], Any], reps: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def _ms(times: list[float]) -> dict[str, float]:
    ms = [t * 1000 for t in times]
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "n": len(ms),
    }


def measure_http(
    url: str,
    data_dir: Path,
    logs: Path,
    dialect: str,
    *,
    requests: int,
    pages: int,
    month: tuple[date, date],
    metric_reps: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    env = intake.app_env(url, data_dir)
    server = intake.start_server(["dispatch.app:create_app", "--factory"], env=env, log=logs / f"sla-{dialect}.log")
    out: dict[str, Any] = {}
    try:
        key = intake.dispatcher_key(server)
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:

            def first_page() -> dict[str, Any]:
                r = client.get("/v1/sla/at-risk", params={"limit": 50})
                r.raise_for_status()
                return r.json()

            _timed(first_page, 20)  # warm-up
            meter = CpuMeter().start()
            times, page = _timed(first_page, requests)
            out["at_risk_first"] = _ms(times) | {
                "machine_busy_cores": meter.stop(),
                "items": len(page["items"]),
                "emergencies_on_page": sum(i["policy"] == "emergency" for i in page["items"]),
            }
            walk: list[float] = []
            cursor, seen = page["next_cursor"], len(page["items"])
            for _ in range(pages):
                if not cursor:
                    break
                t0 = time.perf_counter()
                r = client.get("/v1/sla/at-risk", params={"limit": 50, "cursor": cursor})
                walk.append(time.perf_counter() - t0)
                r.raise_for_status()
                body = r.json()
                cursor, seen = body["next_cursor"], seen + len(body["items"])
            out["at_risk_walk"] = _ms(walk) | {
                "pages": len(walk) + 1,
                "jobs_seen": seen,
                "last_page_ms": walk[-1] * 1000 if walk else math.nan,
            }
            say(
                f"  {dialect}: at-risk over HTTP p50 {out['at_risk_first']['p50_ms']:.1f} ms, "
                f"p99 {out['at_risk_first']['p99_ms']:.1f} ms; {len(walk) + 1} pages p50 {out['at_risk_walk']['p50_ms']:.1f} ms"
            )
            for variant, params in _metric_variants(month):

                def get(params: dict[str, str] = params) -> None:
                    r = client.get("/v1/metrics", params=params)
                    r.raise_for_status()

                t, _ = _timed(get, metric_reps)
                out[f"metrics_{variant}"] = _ms(t)
                say(f"  {dialect}: metrics {variant} over HTTP p50 {out[f'metrics_{variant}']['p50_ms']:.0f} ms")
    finally:
        server.stop()
    return out


def _metric_variants(month: tuple[date, date]) -> list[tuple[str, dict[str, str]]]:
    since, until = month[0].isoformat(), month[1].isoformat()
    return [
        ("none", {"since": since, "until": until}),
        ("technician", {"since": since, "until": until, "group_by": "technician"}),
        ("day", {"since": since, "until": until, "interval": "day"}),
    ]


def measure_inprocess(
    url: str, dialect: str, *, requests: int, month: tuple[date, date], metric_reps: int, say: Callable[[str], None]
) -> dict[str, Any]:
    settings = Settings(database_url=url)
    db = Database(make_engine(settings))
    caller = Caller(key_id=1, role=Role.dispatcher)
    out: dict[str, Any] = {}

    def at_risk() -> int:
        with db.transaction(write=False) as s:
            rows, _ = sla_service.at_risk(session=s, caller=caller, now=datetime.now(UTC), limit=50)
            return len(rows)

    _timed(at_risk, 10)
    times, _ = _timed(at_risk, requests)
    out["at_risk_service"] = _ms(times)
    since = datetime.combine(month[0], datetime.min.time(), UTC)
    until = datetime.combine(month[1], datetime.min.time(), UTC)
    for variant, params in _metric_variants(month):

        def compute(params: dict[str, str] = params) -> int:
            with db.transaction(write=False) as s:
                return len(
                    metrics.compute(
                        session=s,
                        since=since,
                        until=until,
                        now=datetime.now(UTC),
                        group_by=params.get("group_by", "none"),  # type: ignore[arg-type]
                        interval=params.get("interval", "none"),
                    )
                )  # type: ignore[arg-type]

        t, groups = _timed(compute, metric_reps)
        out[f"metrics_service_{variant}"] = _ms(t) | {"rows": groups}
    with db.transaction(write=False) as s:
        out["metrics_jobs"] = s.scalar(
            text("SELECT COUNT(*) FROM job WHERE reported_at >= :a AND reported_at < :b"),
            {"a": _bind(db, since), "b": _bind(db, until)},
        )
    say(
        f"  {dialect}: in-process at-risk p50 {out['at_risk_service']['p50_ms']:.1f} ms; metrics "
        f"({out['metrics_jobs']:,} jobs) p50 {out['metrics_service_none']['p50_ms']:.0f} ms"
    )
    db.dispose()
    return out


def measure_watcher(
    url: str, dialect: str, cfg: Config, *, backlog_passes: int, steady_passes: int, say: Callable[[str], None]
) -> dict[str, Any]:
    settings = Settings(database_url=url)
    db = Database(make_engine(settings))
    out: dict[str, Any] = {}
    predict_times: list[float] = []
    original = watcher.predict

    def timed_predict(session: Any, now: datetime, settings_: Settings) -> Any:
        t0 = time.perf_counter()
        try:
            return original(session, now, settings_)
        finally:
            predict_times.append(time.perf_counter() - t0)

    backlog = timedelta(minutes=cfg.backlog_minutes)
    # 1. The predictions a running watcher would already have made (the cold start of a watcher).
    t0 = time.perf_counter()
    with db.transaction() as s:
        p = watcher.predict(s, cfg.now - backlog, settings)
    out["cold_predict"] = {
        "seconds": time.perf_counter() - t0,
        "set": p.set if p else None,
        "cleared": p.cleared if p else None,
    }
    say(f"  {dialect}: cold predict {out['cold_predict']['seconds']:.2f} s, set {out['cold_predict']['set']:,}")
    watcher.predict = timed_predict  # type: ignore[assignment]
    try:
        # 2. Passes with a backlog: the first at "now", each next one a backlog later.
        rows = []
        at = cfg.now
        for _ in range(backlog_passes):
            predict_times.clear()
            due = _due(db, at)
            result = watcher.run_pass(db, lambda at=at: at, settings)
            rows.append(
                {
                    "now": at.isoformat(),
                    "due": due,
                    "fired": result.fired,
                    "predicted": result.predicted,
                    "cleared": result.cleared,
                    "seconds": result.seconds,
                    "predict_s": sum(predict_times),
                }
            )
            say(
                f"  {dialect}: pass with {due:,} due: fired {result.fired:,} in {result.seconds:.2f} s "
                f"(predict {sum(predict_times):.2f} s; predicted {result.predicted}, cleared {result.cleared})"
            )
            at += backlog
        out["backlog_passes"] = rows
        # 3. Steady state: nothing due.
        rows = []
        for _ in range(steady_passes):
            predict_times.clear()
            at2 = at - backlog
            result = watcher.run_pass(db, lambda at2=at2: at2, settings)
            rows.append(
                {
                    "fired": result.fired,
                    "predicted": result.predicted,
                    "cleared": result.cleared,
                    "seconds": result.seconds,
                    "predict_s": sum(predict_times),
                }
            )
        out["steady_passes"] = rows
        say(
            f"  {dialect}: steady pass p50 {statistics.median(r['seconds'] for r in rows):.2f} s "
            f"(predict {statistics.median(r['predict_s'] for r in rows):.2f} s)"
        )
    finally:
        watcher.predict = original  # type: ignore[assignment]
    db.dispose()
    return out


def _due(db: Database, at: datetime) -> int:
    with db.transaction(write=False) as s:
        return (
            s.scalar(
                text(
                    "SELECT COUNT(*) FROM sla_checkpoint WHERE fired_at IS NULL AND resolved_at IS NULL "
                    "AND fires_at <= :now"
                ),
                {"now": _bind(db, at)},
            )
            or 0
        )


def metrics_month(now: datetime) -> tuple[date, date]:
    """The month before last: closed, with few jobs still open (about 1/12 of the jobs)."""
    first_this = now.date().replace(day=1)
    last_month = (first_this - timedelta(days=1)).replace(day=1)
    before = (last_month - timedelta(days=1)).replace(day=1)
    return before, last_month


def run(
    *,
    urls: dict[str, str],
    data_dir: Path,
    logs: Path,
    seed: int,
    jobs: int,
    quick: bool,
    backlog_minutes: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    cfg = Config(
        jobs=jobs,
        open=jobs // 10,
        technicians=max(500, min(5000, jobs // 200)),
        seed=seed,
        now=now,
        backlog_minutes=backlog_minutes,
    )
    month = metrics_month(now)
    requests = 60 if quick else 200
    pages = 20 if quick else 100
    metric_reps = 3 if quick else 5
    t0 = time.perf_counter()
    sk = skeleton(cfg)
    say(
        f"skeleton of {jobs:,} jobs ({cfg.open:,} open, {cfg.technicians:,} technicians) in "
        f"{time.perf_counter() - t0:.1f} s; now = {now.isoformat()}"
    )
    loads = load(cfg, sk, urls, say)
    result: dict[str, Any] = {
        "config": dataclasses.asdict(cfg) | {"now": now.isoformat(), "month": [m.isoformat() for m in month]},
        "databases": {},
    }
    for dialect, url in urls.items():
        say(
            f"[{dialect}] loaded in {loads[dialect]['load_s']:.0f} s (+ {loads[dialect]['finish_s']:.0f} s "
            f"VACUUM ANALYZE / checkpoint)"
        )
        row: dict[str, Any] = {"load": loads[dialect], "data": describe(url, datetime.now(UTC))}
        say(f"  {dialect}: {row['data']}")
        meter = CpuMeter().start()
        row["http"] = measure_http(
            url, data_dir, logs, dialect, requests=requests, pages=pages, month=month, metric_reps=metric_reps, say=say
        )
        row["inprocess"] = measure_inprocess(
            url, dialect, requests=requests, month=month, metric_reps=metric_reps, say=say
        )
        row["watcher"] = measure_watcher(url, dialect, cfg, backlog_passes=3, steady_passes=3 if quick else 5, say=say)
        row["machine_busy_cores"] = meter.stop()
        result["databases"][dialect] = row
    return result


def main() -> None:
    """Measure the watcher again on databases a run kept (``bench/run.py --only sla --keep``),
    e.g. after a change to ``dispatch.sla.watcher``: the passes start one backlog after the last
    pass of that run, so there are fresh checkpoints due."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--results", required=True, help="the run's bench/results/<time>-full.json")
    p.add_argument("--sqlite", help="the kept SQLite file")
    p.add_argument("--pg-url", help="the kept PostgreSQL database")
    p.add_argument("--after-passes", type=int, default=3, help="passes the earlier run(s) made (default 3)")
    args = p.parse_args()
    run_ = json.loads(Path(args.results).read_text())["sla"]
    c = run_["config"]
    later = datetime.fromisoformat(c["now"]) + timedelta(minutes=c["backlog_minutes"]) * args.after_passes
    cfg = Config(
        jobs=c["jobs"],
        open=c["open"],
        technicians=c["technicians"],
        seed=c["seed"],
        now=later,
        backlog_minutes=c["backlog_minutes"],
    )
    out = {}
    for dialect, url in (("sqlite", f"sqlite:///{args.sqlite}" if args.sqlite else None), ("postgresql", args.pg_url)):
        if url:
            out[dialect] = measure_watcher(url, dialect, cfg, backlog_passes=3, steady_passes=5, say=print)
    target = Path(args.results).with_name(Path(args.results).stem + f"-watcher-{datetime.now(UTC):%H%M%S}.json")
    target.write_text(json.dumps({"now": later.isoformat(), "watcher": out}, indent=1, default=str))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
