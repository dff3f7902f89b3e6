"""Selection: the nearest available technician, database included, against three references.

For each layout and N the same technicians are loaded into SQLite and PostgreSQL, and the
same query points are asked of:

* ``service``: ``dispatch.assignment.service.find_nearest`` in a read transaction of its own
  (``Database.transaction(write=False)``), as a request would run it;
* ``naive``: one SELECT of every technician with the skill (loaded from the database on
  every query), a geopy geodesic to each of them, the nearest available one wins;
* ``gist`` (PostgreSQL only): a GiST k-nearest-neighbour scan on ``ll_to_earth(lat, lon)``
  (extensions cube + earthdistance + btree_gist, an index on (skill, ll_to_earth(lat, lon))
  created in the bench database only), availability flags filtered in SQL, shift hours and
  the exact geodesic ranking in Python; k grows until the k-th row is provably farther than
  the best found.

Every answer is checked against a brute-force oracle: all technicians in memory (the
generated data, not the database), the same availability rules, a geopy geodesic to every
technician who qualifies. Agreement means the same distance within 1 m (ties allowed).
The oracle runs before and outside the timed loop.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import datagen
from geopy.distance import geodesic
from sqlalchemy import event, select, text
from stats import summary_ms

from dispatch.assignment import service
from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.technicians.models import Technician, TechnicianSkill
from dispatch.technicians.shifts import is_on_shift

AGREE_KM = 0.001  # 1 m
# The references below use only the models, the shift rule and geopy, not the service's ranking
# code, so a bug there cannot hide in them. A sphere and WGS-84 differ by less than 0.6 % on
# distance; the GiST reference allows 1 %.
_SPHERE_MARGIN = 0.01
_EARTH_RADIUS_KM = 6371.0088


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _on_shift(row: Any, now: Any) -> bool:
    return is_on_shift(now, start=row.shift_start, end=row.shift_end, days=row.shift_days, timezone=row.timezone)


# What the naive approach reads for each technician with the skill.
_COLUMNS = (
    TechnicianSkill.technician_id,
    Technician.name,
    TechnicianSkill.lat,
    TechnicianSkill.lon,
    Technician.active,
    Technician.on_duty,
    Technician.open_jobs,
    Technician.capacity,
    Technician.shift_start,
    Technician.shift_end,
    Technician.shift_days,
    Technician.timezone,
)

# --------------------------------------------------------------------------- the oracle

_ORACLE_BY_SKILL: dict[str, list[datagen.Tech]] = {}


def _oracle_one(q: datagen.Query) -> tuple[float | None, int | None]:
    best: tuple[float, int] | None = None
    for t in _ORACLE_BY_SKILL.get(q.skill, ()):
        if not is_on_shift(q.now, start=t.shift_start, end=t.shift_end, days=t.shift_days, timezone=t.timezone):
            continue
        d = geodesic((q.lat, q.lon), (t.lat, t.lon)).km
        if best is None or (d, t.id) < best:
            best = (d, t.id)
    return (best[0], best[1]) if best else (None, None)


def oracle(
    techs: list[datagen.Tech], queries: list[datagen.Query], workers: int = 2
) -> list[tuple[float | None, int | None]]:
    """Brute force. The static rules (active, on duty, under capacity, skill) are applied first
    because they are cheap; every technician passing them (and on shift) is measured exactly."""
    global _ORACLE_BY_SKILL
    by_skill: dict[str, list[datagen.Tech]] = defaultdict(list)
    for t in techs:
        if t.active and t.on_duty and t.open_jobs < t.capacity:
            for s in t.skills:
                by_skill[s].append(t)
    _ORACLE_BY_SKILL = dict(by_skill)
    try:
        if workers > 1 and len(queries) * len(techs) > 2_000_000:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(workers) as pool:
                return pool.map(_oracle_one, queries, chunksize=8)
        return [_oracle_one(q) for q in queries]
    finally:
        _ORACLE_BY_SKILL = {}


# --------------------------------------------------------------------------- approaches


def service_query(db: Database, settings: Settings, q: datagen.Query) -> tuple[float | None, int | None]:
    with db.transaction(write=False) as session:
        selection = service.find_nearest(
            session=session, lat=q.lat, lon=q.lon, skill=q.skill, now=q.now, settings=settings
        )
        best = selection.best
        if best is None:
            return None, None
        return best.distance_km(q.lat, q.lon), best.row.technician_id


def naive_query(db: Database, q: datagen.Query) -> tuple[float | None, int | None]:
    with db.transaction(write=False) as session:
        rows = session.execute(
            select(*_COLUMNS)
            .join(Technician, Technician.id == TechnicianSkill.technician_id)
            .where(TechnicianSkill.skill == q.skill)
        ).all()
    best: tuple[float, int] | None = None
    origin = (q.lat, q.lon)
    for row in rows:
        d = geodesic(origin, (row.lat, row.lon)).km  # every technician with the skill
        available = row.active and row.on_duty and row.open_jobs < row.capacity and _on_shift(row, q.now)
        if available and (best is None or (d, row.technician_id) < best):
            best = (d, row.technician_id)
    return (best[0], best[1]) if best else (None, None)


GIST_SETUP = [
    "CREATE EXTENSION IF NOT EXISTS cube",
    "CREATE EXTENSION IF NOT EXISTS earthdistance",
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "CREATE INDEX IF NOT EXISTS bench_technician_skill_earth ON technician_skill "
    "USING gist (skill, ll_to_earth(lat, lon))",
    "ANALYZE technician_skill",
]

_GIST_SQL = text(
    """
    SELECT ts.technician_id, t.name, ts.lat, ts.lon, t.active, t.on_duty, t.open_jobs, t.capacity,
           t.shift_start, t.shift_end, t.shift_days, t.timezone
    FROM technician_skill ts JOIN technician t ON t.id = ts.technician_id
    WHERE ts.skill = :skill AND t.active AND t.on_duty AND t.open_jobs < t.capacity
    ORDER BY ll_to_earth(ts.lat, ts.lon) <-> ll_to_earth(:lat, :lon)
    LIMIT :k
    """
)
GIST_FIRST_K = 16
CHUNK = 25


def gist_query(db: Database, q: datagen.Query) -> tuple[float | None, int | None]:
    k = GIST_FIRST_K
    with db.transaction(write=False) as session:
        while True:
            rows = session.execute(_GIST_SQL, {"skill": q.skill, "lat": q.lat, "lon": q.lon, "k": k}).all()
            # Rows come nearest first on the sphere. The exact distance is measured only for those
            # that could still be nearest on the ellipsoid than the first one on shift.
            best: tuple[float, int] | None = None
            cutoff = None
            for row in rows:
                if not _on_shift(row, q.now):
                    continue
                estimate = _haversine_km(q.lat, q.lon, row.lat, row.lon)
                if cutoff is not None and estimate > cutoff:
                    break
                if cutoff is None:
                    cutoff = estimate * (1 + _SPHERE_MARGIN) / (1 - _SPHERE_MARGIN) + 1e-6
                d = geodesic((q.lat, q.lon), (row.lat, row.lon)).km
                if best is None or (d, row.technician_id) < best:
                    best = (d, row.technician_id)
            if len(rows) < k:  # everyone who qualifies in SQL was fetched
                break
            # Nobody unfetched is nearer on the sphere than the last row, so none is nearer on the
            # ellipsoid than this bound.
            bound = _haversine_km(q.lat, q.lon, rows[-1].lat, rows[-1].lon) * (1 - _SPHERE_MARGIN)
            if best is not None and best[0] <= bound:
                break
            k *= 4
    return (best[0], best[1]) if best else (None, None)


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    dialect: str
    layout: str
    n: int
    approach: str
    queries: int
    agree: int
    checked: int
    none_found: int
    timings: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "layout": self.layout,
            "n": self.n,
            "approach": self.approach,
            "queries": self.queries,
            "agree": self.agree,
            "checked": self.checked,
            "none_found": self.none_found,
            **summary_ms(self.timings),
            **self.extra,
        }


def _agrees(answer: tuple[float | None, int | None], expected: tuple[float | None, int | None]) -> bool:
    if expected[0] is None or answer[0] is None:
        return expected[0] is None and answer[0] is None
    return abs(answer[0] - expected[0]) <= AGREE_KM


def _round_trips(
    db: Database, settings: Settings, queries: list[datagen.Query], warmup: list[datagen.Query]
) -> dict[str, float]:
    """Untimed: how many SELECTs the service's search sends per query (counted on the engine),
    replaying the timed pass from the same starting state."""
    reset_process_state()
    for q in warmup:
        service_query(db, settings, q)
    count = [0]

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip()[:6].upper() == "SELECT":
            count[0] += 1

    event.listen(db.engine, "before_cursor_execute", before)
    per_query: list[int] = []
    try:
        for q in queries:
            count[0] = 0
            service_query(db, settings, q)
            per_query.append(count[0])
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    n = max(len(per_query), 1)
    return {"selects_mean": sum(per_query) / n, "selects_max": max(per_query, default=0)}


def reset_process_state() -> None:
    """Forget anything the service learnt from earlier queries in this process (e.g. a cache of
    search radii), so each data set starts cold and is warmed by the same warm-up queries."""
    for name in dir(service):
        value = getattr(service, name)
        if name.startswith("_") and "hint" in name and isinstance(value, dict):
            value.clear()


def _timed(r: Result, fn: Any, q: datagen.Query, i: int, expected: tuple[float | None, int | None]) -> None:
    t0 = time.perf_counter()
    answer = fn(q)
    elapsed = time.perf_counter() - t0
    r.timings.append(elapsed)
    r.queries += 1
    r.checked += 1
    ok = _agrees(answer, expected)
    r.agree += ok
    r.none_found += answer[0] is None
    if not ok and len(r.extra.setdefault("disagreements", [])) < 5:
        r.extra["disagreements"].append(
            {
                "query": i,
                "lat": q.lat,
                "lon": q.lon,
                "skill": q.skill,
                "now": q.now.isoformat(),
                "answer": answer,
                "oracle": expected,
            }
        )


def measure(
    *,
    db: Database,
    settings: Settings,
    dialect: str,
    layout: str,
    n: int,
    queries: list[datagen.Query],
    expected: list[tuple[float | None, int | None]],
    naive_limit: int,
    with_gist: bool,
    warmup: list[datagen.Query],
) -> list[Result]:
    approaches: list[tuple[str, Any, int]] = [("service", lambda q: service_query(db, settings, q), len(queries))]
    if with_gist:
        approaches.append(("gist", lambda q: gist_query(db, q), len(queries)))
    if naive_limit:
        approaches.append(("naive", lambda q: naive_query(db, q), min(naive_limit, len(queries))))
    results = {name: Result(dialect, layout, n, name, 0, 0, 0, 0) for name, _, _ in approaches}
    reset_process_state()
    # Warm the pool, the statement caches and the page cache with other points than the timed ones.
    for name, fn, _ in approaches:
        if name != "naive":
            for q in warmup:
                fn(q)
    gc.collect()
    gc.freeze()
    try:
        # The service and GiST take turns in chunks of 25 queries (which goes first alternates), so
        # both see the same machine noise, yet neither runs a point just after the other did: a
        # query repeated right away on the same point found the caches warm and ran about 25 %
        # faster in a trial, which real traffic (a new point each time) would not get.
        interleaved = [a for a in approaches if a[0] != "naive"]
        for c, start in enumerate(range(0, len(queries), CHUNK)):
            for name, fn, limit in interleaved[c % 2 :] + interleaved[: c % 2]:
                for i in range(start, min(start + CHUNK, len(queries))):
                    _timed(results[name], fn, queries[i], i, expected[i])
        # The naive approach afterwards, on its own: each of its queries burns up to a second of
        # CPU and leaves cold caches behind, which made the next service query about 2x slower.
        for name, fn, limit in approaches:
            if name == "naive":
                fn(warmup[0])
                for i, q in enumerate(queries[:limit]):
                    _timed(results[name], fn, q, i, expected[i])
    finally:
        gc.unfreeze()
    results["service"].extra.update(_round_trips(db, settings, queries, warmup))
    return list(results.values())
