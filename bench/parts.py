"""Parts: reservation throughput, and filling 1,000 backorders from one receipt.

1. **Reservation**: ``POST /v1/jobs/{id}/parts`` from concurrent clients (closed loop, one
   keep-alive connection each, the raw-socket client of ``intake.py``) against a real
   ``python -m uvicorn`` server with one worker, as a dispatcher. Every request asks for a part
   on a *different* job (a job needs a part once or twice in its life; nobody asks for parts on
   the same job hundreds of times a second), each job already assigned to a technician whose
   ``home_branch`` is one of five branches. Workloads:

   * ``stocked, 20 SKUs``: every branch and the central warehouse hold plenty of 20 SKUs, so
     each request is reserved at the technician's own branch (the common case);
   * ``stocked, 1 SKU``: the same, every request for one SKU (all requests queue on that
     part's row lock, ``SELECT … FOR UPDATE`` on PostgreSQL);
   * ``scarce, 20 SKUs``: little stock, so during the run the requests go from the own branch
     to other branches, then to the central warehouse (shipped, the job waits), then to
     backorder: the answer's ``state`` is counted.

2. **Backorders**: ``count`` jobs (1,000 in a full run) in the Warsaw area, each assigned to a
   Warsaw technician, each with one backordered piece of one SKU (asked for through
   ``dispatch.parts.service.request_parts`` in random order, so the order of the backorders is
   not the order of their deadlines; ``due_at`` spreads over 20 hours). Then one
   ``POST /v1/locations/{code}/receipts`` of ``count + 100`` pieces to a running server, timed by
   the client, at the Warsaw branch (the backorders are reserved there and the jobs are sent
   back) or at the central warehouse (one shipment per backorder to the job's branch). Checked
   afterwards in the database: exactly ``count`` filled, in order of the jobs' ``due_at``
   (the ledger's movement or shipment ids), stock on hand / reserved equal to the ledger's sums
   and to the job lines, nothing left on backorder. Repeated with a fresh SKU and fresh jobs.

Everything is seeded through the service's own functions (locations, catalogue, stock counts,
technicians, jobs, part requests), never by hand-written rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import intake
from sqlalchemy import func, select, text
from stats import CpuMeter, percentile

from dispatch.auth import service as auth
from dispatch.auth.models import Role
from dispatch.auth.service import SYSTEM, Caller
from dispatch.config import Settings
from dispatch.database import migrate
from dispatch.database.core import Database, make_engine
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.jobs import service as jobs
from dispatch.jobs.models import Job
from dispatch.jobs.schemas import JobCreate
from dispatch.parts import service as parts
from dispatch.parts import stock
from dispatch.parts.models import (
    JobPart,
    JobPartState,
    Location,
    MovementReason,
    Part,
    Shipment,
    Stock,
    StockMovement,
)
from dispatch.parts.schemas import LocationCreate, PartCreate, PartRequestCreate
from dispatch.technicians import service as technicians
from dispatch.technicians.schemas import TechnicianCreate

SKILL = "washing machine"
CENTRAL = ("CENTRAL", "Central warehouse, Lodz", 51.759, 19.456)
# (code, name, lat, lon, customer spread km)
BRANCHES = [
    ("WAW", "Warsaw branch", 52.230, 21.012, 15.0),
    ("KRK", "Krakow branch", 50.065, 19.945, 10.0),
    ("WRO", "Wroclaw branch", 51.108, 17.039, 10.0),
    ("GDN", "Gdansk branch", 54.352, 18.646, 10.0),
    ("POZ", "Poznan branch", 52.406, 16.925, 9.0),
]
TECHS_PER_BRANCH = 60
TECH_CAPACITY = 100  # the schema's maximum; jobs are spread over 60 technicians per branch
BATCH = 250  # seeding: jobs or part requests per transaction

_KM_PER_DEG = 111.2
_STATE = re.compile(rb'"state":"([a-z_]+)"')


def _near(rng: random.Random, lat: float, lon: float, spread_km: float) -> tuple[float, float]:
    return (
        round(lat + rng.gauss(0.0, spread_km) / _KM_PER_DEG, 6),
        round(lon + rng.gauss(0.0, spread_km) / (_KM_PER_DEG * math.cos(math.radians(lat))), 6),
    )


# --------------------------------------------------------------------------- seeding


@dataclass
class World:
    """A seeded database: who may call, and which technicians work from which branch."""

    url: str
    settings: Settings
    db: Database
    dispatcher: Caller
    warehouse: Caller
    dispatcher_key: str
    warehouse_key: str
    techs: dict[str, list[int]]
    _next: dict[str, int] = field(default_factory=dict)

    def technician_for(self, branch: str) -> int:
        i = self._next.get(branch, 0)
        self._next[branch] = i + 1
        ids = self.techs[branch]
        return ids[i % len(ids)]

    def close(self) -> None:
        self.db.dispose()


def seed_world(url: str, data_dir: Path, seed: int) -> World:
    """Migrate, then the central warehouse, five branches, keys and technicians (service functions)."""
    settings = Settings(
        database_url=url, data_dir=data_dir, environment="production", auto_dispatch=False, sqlite_synchronous="NORMAL"
    )  # seeding only; the server runs with the default (FULL)
    migrate.upgrade(settings)
    db = Database(make_engine(settings))
    rng = random.Random(f"{seed}:parts:technicians")
    now = datetime.now(UTC)
    techs: dict[str, list[int]] = {}
    with db.transaction() as session:
        stock.create_location(
            session=session,
            settings=settings,
            now=now,
            location_in=LocationCreate(
                code=CENTRAL[0], name=CENTRAL[1], kind="central", lat=CENTRAL[2], lon=CENTRAL[3]
            ),
        )
        for code, name, lat, lon, _spread in BRANCHES:
            stock.create_location(
                session=session,
                settings=settings,
                now=now,
                location_in=LocationCreate(code=code, name=name, kind="branch", lat=lat, lon=lon),
            )
        d_key, d_secret = auth.issue(session=session, role=Role.dispatcher, now=now, name="bench parts")
        w_key, w_secret = auth.issue(session=session, role=Role.warehouse, now=now, name="bench parts")
        for code, _name, lat, lon, spread in BRANCHES:
            techs[code] = []
            for i in range(TECHS_PER_BRANCH):
                tlat, tlon = _near(rng, lat, lon, spread)
                t = technicians.create(
                    session=session,
                    now=now,
                    technician_in=TechnicianCreate(
                        name=f"{code} technician {i}",
                        skills=[SKILL],
                        lat=tlat,
                        lon=tlon,
                        capacity=TECH_CAPACITY,
                        home_branch=code,
                    ),
                )
                techs[code].append(t.id)  # type: ignore[arg-type]
    return World(
        url=url,
        settings=settings,
        db=db,
        dispatcher=Caller(key_id=d_key.id, role=Role.dispatcher),  # type: ignore[arg-type]
        warehouse=Caller(key_id=w_key.id, role=Role.warehouse),  # type: ignore[arg-type]
        dispatcher_key=d_secret,
        warehouse_key=w_secret,
        techs=techs,
    )


def seed_parts(world: World, skus: list[str], levels: dict[str, int], lead_time_hours: float = 72.0) -> None:
    """Catalogue entries, then a stock count of ``levels[location code]`` of each at each location."""
    now = datetime.now(UTC)
    with world.db.transaction() as session:
        for sku in skus:
            stock.create_part(
                session=session,
                now=now,
                part_in=PartCreate(sku=sku, name=f"Part {sku}", categories=[SKILL], lead_time_hours=lead_time_hours),
            )
        for sku in skus:
            for code, on_hand in levels.items():
                if on_hand:
                    parts.set_stock(
                        session=session,
                        code=code,
                        sku=sku,
                        on_hand=on_hand,
                        note="bench count",
                        caller=world.warehouse,
                        now=now,
                        settings=world.settings,
                    )


def seed_jobs(
    world: World, count: int, rng: random.Random, branches: list[str], spread_hours: float = 20.0
) -> list[int]:
    """``count`` jobs near the given branches, reported over the last ``spread_hours`` (so their
    deadlines differ), each assigned to a technician of that branch (capacity claimed)."""
    ids: list[int] = []
    by_code = {b[0]: b for b in BRANCHES}
    for start in range(0, count, BATCH):
        now = datetime.now(UTC)
        with world.db.transaction() as session:
            for i in range(start, min(count, start + BATCH)):
                code, _name, lat, lon, spread = by_code[rng.choice(branches)]
                clat, clon = _near(rng, lat, lon, spread)
                job_in = JobCreate.model_validate(
                    {
                        "customer": {
                            "name": f"Customer {i}",
                            "phone": "+48 22 555 01 00",
                            "address": f"{i} Main Street, {code}",
                            "lat": clat,
                            "lon": clon,
                        },
                        "product": {"category": SKILL, "model": "WM-100", "serial": f"SN{i}"},
                        "fault": "Drum does not spin",
                        "reported_at": (now - timedelta(seconds=rng.uniform(60, spread_hours * 3600))).isoformat(),
                    }
                )
                job, plan = jobs.new(
                    session=session,
                    job_in=job_in,
                    caller=world.dispatcher,
                    now=now,
                    settings=world.settings,
                    location=(clat, clon),
                )
                tech = world.technician_for(code)
                if not technicians.claim_capacity(session=session, technician_id=tech):
                    raise RuntimeError(f"technician {tech} is full: seed fewer jobs per branch")
                jobs.assign_new(job, technician_id=tech, now=now)
                jobs.save_new(
                    session=session,
                    job=job,
                    plan=plan,
                    now=now,
                    timeline=[events.entry(EventType.dispatched, SYSTEM.actor, technician_id=tech)],
                )
                ids.append(job.id)  # type: ignore[arg-type]
    return ids


def seed_backorders(world: World, sku: str, job_ids: list[int], rng: random.Random) -> None:
    """One piece of ``sku`` asked for on each job (random order) through the service: all backordered."""
    order = list(job_ids)
    rng.shuffle(order)
    request = PartRequestCreate(sku=sku, quantity=1)
    for start in range(0, len(order), BATCH):
        now = datetime.now(UTC)
        with world.db.transaction() as session:
            for job_id in order[start : start + BATCH]:
                line = parts.request_parts(
                    session=session,
                    job_id=job_id,
                    request=request,
                    caller=world.dispatcher,
                    now=now,
                    settings=world.settings,
                )
                if line.state is not JobPartState.backordered:
                    raise RuntimeError(f"job {job_id}: expected a backorder, got {line.state.value}")


# --------------------------------------------------------------------------- the load


@dataclass
class PartsLoad(intake.LoadResult):
    states: dict[str, int] = field(default_factory=dict)
    state_latencies: dict[str, list[float]] = field(default_factory=dict)
    reused: int = 0  # requests on a job that had already been asked (the prepared jobs ran out)

    def row(self) -> dict[str, Any]:
        out = super().row()
        out.pop("assigned_share", None)
        ok = sum(self.states.values())
        out["states"] = dict(self.states)
        out["state_shares"] = {k: v / ok for k, v in self.states.items()} if ok else {}
        out["state_p50_ms"] = {k: percentile([x * 1000 for x in v], 50) for k, v in self.state_latencies.items()}
        out["reused"] = self.reused
        return out


async def _drive(
    port: int, requests: list[bytes], *, clients: int, warmup: float, duration: float, timeout: float, result: PartsLoad
) -> None:
    """intake._drive, with a different prepared request (path and body) for every request."""
    counter = iter(range(10**9))
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from, measure_to = start + warmup, start + warmup + duration

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, bytes]:
        n = next(counter)
        if n >= len(requests):
            result.reused += 1
        writer.write(requests[n % len(requests)])
        head_bytes = await reader.readuntil(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:].strip())
        body = await reader.readexactly(length) if length else b""
        return status, body

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                t0 = loop.time()
                if t0 >= measure_to:
                    return
                counted = t0 >= measure_from
                try:
                    status, body = await asyncio.wait_for(one(reader, writer), timeout)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                    if counted:
                        result.latencies.append(loop.time() - t0)
                        result.errors += 1
                        if isinstance(exc, asyncio.TimeoutError):
                            result.timeouts += 1
                        result.error_samples.append(repr(exc))
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                if counted:
                    elapsed = loop.time() - t0
                    result.latencies.append(elapsed)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    if not 200 <= status < 300:
                        result.errors += 1
                        result.error_samples.append(f"{status} {body[:300]!r}")
                    else:
                        m = _STATE.search(body)
                        state = m.group(1).decode() if m else "?"
                        result.states[state] = result.states.get(state, 0) + 1
                        result.state_latencies.setdefault(state, []).append(elapsed)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))


def run_load(
    server: intake.Server, requests: list[bytes], *, clients: int, warmup: float, duration: float, timeout: float = 10.0
) -> PartsLoad:
    """intake.run_load (CPU of server and load generator over the measured window) for these requests."""
    result = PartsLoad(clients=clients, seconds=duration)
    marks: dict[str, float] = {}
    meter = CpuMeter()

    async def main() -> None:
        def mark() -> None:
            marks["server"], marks["client"] = server.cpu_seconds(), time.process_time()
            meter.start()

        asyncio.get_running_loop().call_later(warmup, mark)
        await _drive(
            server.port, requests, clients=clients, warmup=warmup, duration=duration, timeout=timeout, result=result
        )

    wall0 = time.perf_counter()
    asyncio.run(main())
    result.machine_busy_cores = meter.stop()
    wall = time.perf_counter() - wall0
    if marks:
        scale = duration / max(wall - warmup, duration)
        result.server_cpu_s = (server.cpu_seconds() - marks["server"]) * scale
        result.client_cpu_s = (time.process_time() - marks["client"]) * scale
    return result


def part_requests(port: int, key: str, job_ids: list[int], skus: list[str], rng: random.Random) -> list[bytes]:
    """One raw HTTP/1.1 request per job, in a random order, each for one piece of a random SKU."""
    order = list(job_ids)
    rng.shuffle(order)
    out = []
    for job_id in order:
        body = f'{{"sku":"{rng.choice(skus)}","quantity":1}}'.encode()
        out.append(
            (
                f"POST /v1/jobs/{job_id}/parts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Authorization: Bearer {key}\r\n\r\n"
            ).encode()
            + body
        )
    return out


# --------------------------------------------------------------------------- 1. reservation


@dataclass(frozen=True)
class Workload:
    name: str
    skus: list[str]
    levels: dict[str, int]  # location code -> on hand of each SKU


def workloads(scarce_per_branch: int, scarce_central: int) -> list[Workload]:
    plenty = {CENTRAL[0]: 1_000_000, **{b[0]: 100_000 for b in BRANCHES}}
    return [
        Workload("stocked, 20 SKUs", [f"STK-{i:02d}" for i in range(20)], plenty),
        Workload("stocked, 1 SKU", ["HOT-00"], plenty),
        Workload(
            "scarce, 20 SKUs",
            [f"LOW-{i:02d}" for i in range(20)],
            {CENTRAL[0]: scarce_central, **{b[0]: scarce_per_branch for b in BRANCHES}},
        ),
    ]


def run_reservation(
    *,
    dialect: str,
    url: str,
    data_dir: Path,
    logs: Path,
    seed: int,
    clients: int,
    warmup: float,
    seconds: float,
    jobs_per_workload: int,
    scarce_per_branch: int,
    scarce_central: int,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}:parts:reservation")
    t0 = time.perf_counter()
    world = seed_world(url, data_dir, seed)
    loads = workloads(scarce_per_branch, scarce_central)
    job_sets = []
    try:
        for w in loads:
            seed_parts(world, w.skus, w.levels)
            job_sets.append(seed_jobs(world, jobs_per_workload, rng, [b[0] for b in BRANCHES]))
        key = world.dispatcher_key
        vacuum(world)
    finally:
        world.close()
    say(
        f"  {dialect}: seeded {len(loads)} × {jobs_per_workload:,} assigned jobs, {len(BRANCHES)} branches, "
        f"{len(BRANCHES) * TECHS_PER_BRANCH} technicians in {time.perf_counter() - t0:.1f} s"
    )
    rows = []
    env = intake.app_env(url, data_dir)
    server = intake.start_server(["dispatch.app:create_app", "--factory"], env=env, log=logs / f"parts-{dialect}.log")
    try:
        for w, job_ids in zip(loads, job_sets):
            requests = part_requests(server.port, key, job_ids, w.skus, rng)
            r = run_load(server, requests, clients=clients, warmup=warmup, duration=seconds)
            row = r.row() | {"dialect": dialect, "workload": w.name, "jobs_prepared": len(job_ids)}
            rows.append(row)
            shares = ", ".join(f"{k} {v:.0%}" for k, v in sorted(row["state_shares"].items()))
            say(
                f"  {dialect:10s} {w.name:18s} {row['rps']:7.1f} rps p50 {row['p50_ms']:6.1f} ms "
                f"p99 {row['p99_ms']:6.1f} ms non-2xx {row['errors']} | {shares}"
                + (f" | {r.reused} requests reused a job" if r.reused else "")
            )
    finally:
        server.stop()
    return rows


# --------------------------------------------------------------------------- 2. backorders


def check_fill(world: World, sku: str, job_ids: list[int], at: str, expect: int, received: int) -> dict[str, Any]:
    """What one receipt did, read back from the database."""
    out: dict[str, Any] = {}
    with world.db.transaction(write=False) as session:
        part = session.scalar(select(Part).where(Part.sku == sku))
        loc = session.scalar(select(Location).where(Location.code == at))
        assert part is not None and loc is not None
        lines = list(session.scalars(select(JobPart).where(JobPart.part_id == part.id)))
        by_state: dict[str, int] = {}
        for line in lines:
            by_state[line.state.value] = by_state.get(line.state.value, 0) + line.quantity
        out["line_states"] = by_state
        due = dict(session.execute(select(Job.id, Job.due_at).where(Job.id.in_(job_ids))).all())
        statuses: dict[str, int] = {}
        for status, n in session.execute(
            select(Job.status, func.count()).where(Job.id.in_(job_ids)).group_by(Job.status)
        ).all():
            statuses[status.value] = n
        out["job_statuses"] = statuses
        waiting_flag = session.scalar(
            select(func.count()).where(Job.id.in_(job_ids), Job.waiting_for_parts.is_not(None))
        )
        out["jobs_waiting_for_parts"] = waiting_flag
        levels = {
            code: (s.on_hand, s.reserved)
            for code, s in session.execute(
                select(Location.code, Stock)
                .join(Stock, Stock.location_id == Location.id)
                .where(Stock.part_id == part.id)
            ).all()
        }
        ledger = {
            code: (int(dh or 0), int(dr or 0))
            for code, dh, dr in session.execute(
                select(Location.code, func.sum(StockMovement.on_hand_change), func.sum(StockMovement.reserved_change))
                .join(Location, Location.id == StockMovement.location_id)
                .where(StockMovement.part_id == part.id)
                .group_by(Location.code)
            ).all()
        }
        out["stock"] = {code: {"on_hand": h, "reserved": r} for code, (h, r) in levels.items()}
        held = {}
        for line in lines:
            if line.state is JobPartState.reserved:
                code = session.get(Location, line.location_id).code  # type: ignore[union-attr]
                held[code] = held.get(code, 0) + line.quantity
        if loc.kind.value == "branch":
            # Reservations at the branch, in the order the ledger recorded them.
            order = list(
                session.scalars(
                    select(StockMovement.job_id)
                    .where(
                        StockMovement.part_id == part.id,
                        StockMovement.location_id == loc.id,
                        StockMovement.reason == MovementReason.reserved,
                    )
                    .order_by(StockMovement.id)
                )
            )
            filled = by_state.get("reserved", 0)
            expected_levels = {at: (received, expect)}
        else:
            # One shipment per backorder, from the warehouse to the job's branch.
            order = list(
                session.scalars(
                    select(Shipment.job_id)
                    .where(Shipment.part_id == part.id, Shipment.from_location_id == loc.id)
                    .order_by(Shipment.id)
                )
            )
            filled = by_state.get("in_transit", 0)
            expected_levels = {at: (received - expect, 0)}
            out["shipments"] = len(order)
        dues = [due[j] for j in order]
        out["filled"] = filled
        out["fill_order_by_due_at"] = len(order) == expect and all(a <= b for a, b in zip(dues, dues[1:]))
        out["fill_order_jobs_distinct"] = len(set(order)) == len(order) == len(set(order) & set(job_ids))
        out["stock_matches_ledger"] = all(levels.get(c) == ledger.get(c, (0, 0)) for c in set(levels) | set(ledger))
        out["reserved_matches_lines"] = all(r == held.get(c, 0) for c, (_h, r) in levels.items())
        out["stock_as_expected"] = all(levels.get(c) == v for c, v in expected_levels.items())
        out["backordered_left"] = by_state.get("backordered", 0)
    out["ok"] = (
        out["filled"] == expect
        and out["backordered_left"] == 0
        and out["fill_order_by_due_at"]
        and out["fill_order_jobs_distinct"]
        and out["stock_matches_ledger"]
        and out["reserved_matches_lines"]
        and out["stock_as_expected"]
    )
    return out


class Probe:
    """Another dispatcher's part requests (a stocked SKU, other jobs) sent one at a time, 50 ms
    apart, while a receipt runs: how long does everybody else wait?"""

    def __init__(self, port: int, key: str, job_ids: list[int], sku: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.job_ids, self.sku = job_ids, sku
        self.samples: list[tuple[float, float, int]] = []  # (start, seconds, status)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=900) as client:
            i = 0
            while not self._stop.is_set():
                job_id = self.job_ids[i % len(self.job_ids)]
                i += 1
                t0 = time.perf_counter()
                r = client.post(f"/v1/jobs/{job_id}/parts", json={"sku": self.sku, "quantity": 1})
                self.samples.append((t0, time.perf_counter() - t0, r.status_code))
                self._stop.wait(0.05)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=900)

    def summary(self, start: float, end: float) -> dict[str, Any]:
        before = [s for t, s, _ in self.samples if t + s < start]
        during = [(s, code) for t, s, code in self.samples if t < end and t + s > start]
        return {
            "probe_before_p50_ms": percentile([s * 1000 for s in before], 50),
            "probe_during": len(during),
            "probe_during_max_ms": max((s * 1000 for s, _ in during), default=float("nan")),
            "probe_during_non_2xx": sum(1 for _, code in during if not 200 <= code < 300),
        }


def run_backorders(
    *,
    dialect: str,
    make_url: Callable[[str], str],
    data_dir: Path,
    logs: Path,
    seed: int,
    count: int,
    reps: int,
    where: list[str],
    say: Callable[[str], None],
    probe: bool = True,
) -> list[dict[str, Any]]:
    """For each receipt location: a fresh database with ``reps`` SKUs × ``count`` backorders, then
    ``reps`` receipts (one per SKU) to one running server, each timed by the client. With
    ``probe``, one more receipt on a further SKU runs while another client sends part requests
    (``Probe``); it is reported apart and left out of the timing."""
    rows = []
    extra = 100
    for at in where:
        rng = random.Random(f"{seed}:parts:backorders:{at}")
        url = make_url(f"parts_backorders_{at.lower()}")
        t0 = time.perf_counter()
        world = seed_world(url, data_dir, seed)
        skus = [f"BO-{i}" for i in range(reps + (1 if probe else 0))]
        sets: list[list[int]] = []
        try:
            seed_parts(world, ["WARM-UP", *skus], {})
            seed_parts(world, ["PROBE"], {"WAW": 100_000})
            probe_jobs = seed_jobs(world, 300, rng, ["WAW"]) if probe else []
            t1 = time.perf_counter()
            for sku in skus:
                ids = seed_jobs(world, count, rng, ["WAW"])
                seed_backorders(world, sku, ids, rng)
                sets.append(ids)
            t2 = time.perf_counter()
            vacuum(world)
            say(
                f"  {dialect} at {at}: seeded {len(skus)} × {count:,} jobs with a backorder in {t2 - t0:.1f} s "
                f"({(t2 - t1) / (len(skus) * count) * 1000:.1f} ms per job + request)"
            )
            env = intake.app_env(url, data_dir)
            server = intake.start_server(
                ["dispatch.app:create_app", "--factory"], env=env, log=logs / f"parts-backorders-{dialect}-{at}.log"
            )
            try:
                headers = {"Authorization": f"Bearer {world.warehouse_key}"}
                base = f"http://127.0.0.1:{server.port}/v1/locations/{at}/receipts"
                with httpx.Client(timeout=900) as client:
                    # Warm the server's code paths with a receipt nothing waits for.
                    client.post(base, json={"sku": "WARM-UP", "quantity": 1}, headers=headers).raise_for_status()
                    for rep, (sku, ids) in enumerate(zip(skus, sets)):
                        received = count + extra
                        probing = probe and rep == len(skus) - 1
                        with contextlib.ExitStack() as stack:
                            if probing:
                                watcher = stack.enter_context(
                                    Probe(server.port, world.dispatcher_key, probe_jobs, "PROBE")
                                )
                                time.sleep(1.0)  # the probe's latency before the receipt
                            cpu0 = server.cpu_seconds()
                            meter = CpuMeter().start()
                            w0 = time.perf_counter()
                            r = client.post(
                                base, json={"sku": sku, "quantity": received, "note": "bench"}, headers=headers
                            )
                            wall = time.perf_counter() - w0
                            busy = meter.stop()
                            cpu = server.cpu_seconds() - cpu0
                            if probing:
                                time.sleep(0.3)
                        body = r.json()
                        check = (
                            check_fill(world, sku, ids, at, count, received) if r.status_code == 201 else {"ok": False}
                        )
                        row = {
                            "dialect": dialect,
                            "at": at,
                            "kind": "central" if at == CENTRAL[0] else "branch",
                            "rep": rep,
                            "backorders": count,
                            "received": received,
                            "status": r.status_code,
                            "wall_s": wall,
                            "ms_per_backorder": wall / count * 1000,
                            "server_cpu_s": cpu,
                            "machine_busy_cores": busy,
                            "answer_filled": body.get("backorders_filled"),
                            "answer_quantity": body.get("quantity_to_backorders"),
                            "answer_stock": body.get("stock"),
                            "check": check,
                        }
                        if r.status_code != 201:
                            row["error"] = r.text[:500]
                        if probing:
                            row |= {"probe": True, **watcher.summary(w0, w0 + wall)}
                        rows.append(row)
                        say(
                            f"  {dialect:10s} receipt at {at:8s} #{rep + 1}: {wall:6.2f} s for {count:,} backorders "
                            f"({row['ms_per_backorder']:.2f} ms each), server CPU {cpu:.2f} s, answer filled "
                            f"{row['answer_filled']}, checks {'ok' if check['ok'] else 'FAILED ' + repr(check)}"
                            + (
                                f" | with a probe: {row['probe_during']} other requests during it, the slowest "
                                f"{row['probe_during_max_ms']:.0f} ms (before: p50 {row['probe_before_p50_ms']:.1f} ms)"
                                if probing
                                else ""
                            )
                        )
            finally:
                server.stop()
        finally:
            world.close()
    return rows


def summarise_backorders(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per database and receipt location: the median receipt and the range."""
    out = []
    keys = []
    for r in rows:
        k = (r["dialect"], r["at"])
        if k not in keys:
            keys.append(k)
    for dialect, at in keys:
        probes = [r for r in rows if r["dialect"] == dialect and r["at"] == at and r.get("probe")]
        rs = [r for r in rows if r["dialect"] == dialect and r["at"] == at and not r.get("probe")] or probes
        walls = [r["wall_s"] for r in rs]
        checks = [r["check"] for r in rs]
        out.append(
            {
                "dialect": dialect,
                "at": at,
                "kind": rs[0]["kind"],
                "backorders": rs[0]["backorders"],
                "received": rs[0]["received"],
                "receipts": len(rs),
                "wall_s": statistics.median(walls),
                "wall_min_s": min(walls),
                "wall_max_s": max(walls),
                "ms_per_backorder": statistics.median(walls) / rs[0]["backorders"] * 1000,
                "server_cpu_s": statistics.median(r["server_cpu_s"] for r in rs),
                "filled": [c.get("filled") for c in checks],
                "answer_filled": [r["answer_filled"] for r in rs],
                "in_due_order": all(c.get("fill_order_by_due_at") for c in checks),
                "stock_ok": all(
                    c.get("stock_matches_ledger") and c.get("reserved_matches_lines") and c.get("stock_as_expected")
                    for c in checks
                ),
                "all_ok": all(c.get("ok") for c in checks) and all(r["status"] == 201 for r in rs),
                "job_statuses": checks[0].get("job_statuses"),
                "machine_busy_cores": statistics.median(r["machine_busy_cores"] for r in rs),
            }
        )
        if probes:
            p = probes[0]
            out[-1] |= {
                "probe_receipt_wall_s": p["wall_s"],
                "probe_receipt_ok": bool(p["check"].get("ok")),
                "probe_before_p50_ms": p["probe_before_p50_ms"],
                "probe_during": p["probe_during"],
                "probe_during_max_ms": p["probe_during_max_ms"],
                "probe_during_non_2xx": p["probe_during_non_2xx"],
            }
    return out


def vacuum(world: World) -> None:
    """Statistics as a running PostgreSQL would have them after loading (autovacuum); SQLite is
    left as the service leaves it (see datagen.load)."""
    if world.db.dialect == "postgresql":
        with world.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
