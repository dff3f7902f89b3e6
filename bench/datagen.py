"""Synthetic technicians and query points, and a fast bulk loader.

Two layouts over one large region (Iberia to the Baltic, about 2,700 km x 3,100 km):

* ``uniform``: technicians spread uniformly by area over the whole region, queries too;
* ``clustered``: technicians around 30 cities (Gaussian, city-sized spread, weighted by
  population), queries near the same cities.

20 skills, 3 distinct ones per technician drawn uniformly (so 15 % of technicians have a given skill);
about 60 % on duty, 2 % blocked, about 15 % at capacity, and shift hours for 60 % of them
(day, late and overnight shifts in their own time zone), so availability matters.
Everything is drawn from a seeded ``random.Random``: the same seed gives the same data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Engine, insert, text

from dispatch.geo import lat_band
from dispatch.technicians.models import Technician, TechnicianSkill

REGION = (36.0, 60.0, -10.0, 30.0)  # min_lat, max_lat, min_lon, max_lon
# A Tuesday, 09:00 UTC; query instants are spread over the following week.
T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

SKILLS = [
    "washing machine",
    "refrigerator",
    "dishwasher",
    "oven",
    "tumble dryer",
    "microwave",
    "freezer",
    "cooker hood",
    "induction hob",
    "coffee machine",
    "air conditioner",
    "boiler",
    "water heater",
    "television",
    "vacuum cleaner",
    "heat pump",
    "range cooker",
    "wine cooler",
    "ice maker",
    "water softener",
]

# (name, lat, lon, weight ~ population in millions, spread km, time zone)
CITIES = [
    ("London", 51.507, -0.128, 9.0, 25.0, "Europe/London"),
    ("Paris", 48.857, 2.352, 11.0, 22.0, "Europe/Paris"),
    ("Madrid", 40.417, -3.704, 6.6, 18.0, "Europe/Madrid"),
    ("Barcelona", 41.385, 2.173, 5.5, 15.0, "Europe/Madrid"),
    ("Lisbon", 38.722, -9.139, 2.9, 15.0, "Europe/Lisbon"),
    ("Berlin", 52.520, 13.405, 4.5, 18.0, "Europe/Berlin"),
    ("Hamburg", 53.551, 9.994, 2.6, 14.0, "Europe/Berlin"),
    ("Munich", 48.137, 11.576, 2.9, 14.0, "Europe/Berlin"),
    ("Cologne", 50.938, 6.960, 3.5, 20.0, "Europe/Berlin"),
    ("Frankfurt", 50.110, 8.682, 2.3, 14.0, "Europe/Berlin"),
    ("Warsaw", 52.230, 21.012, 3.1, 15.0, "Europe/Warsaw"),
    ("Krakow", 50.065, 19.945, 1.4, 10.0, "Europe/Warsaw"),
    ("Wroclaw", 51.108, 17.039, 1.2, 10.0, "Europe/Warsaw"),
    ("Gdansk", 54.352, 18.646, 1.1, 10.0, "Europe/Warsaw"),
    ("Poznan", 52.406, 16.925, 1.0, 9.0, "Europe/Warsaw"),
    ("Prague", 50.076, 14.438, 2.2, 13.0, "Europe/Prague"),
    ("Vienna", 48.208, 16.373, 2.9, 13.0, "Europe/Vienna"),
    ("Budapest", 47.498, 19.040, 3.0, 14.0, "Europe/Budapest"),
    ("Bucharest", 44.427, 26.103, 2.3, 12.0, "Europe/Bucharest"),
    ("Milan", 45.464, 9.190, 4.3, 18.0, "Europe/Rome"),
    ("Rome", 41.903, 12.496, 4.3, 16.0, "Europe/Rome"),
    ("Naples", 40.852, 14.268, 3.1, 14.0, "Europe/Rome"),
    ("Zurich", 47.377, 8.541, 1.4, 10.0, "Europe/Zurich"),
    ("Amsterdam", 52.368, 4.904, 2.5, 14.0, "Europe/Amsterdam"),
    ("Brussels", 50.850, 4.352, 2.1, 13.0, "Europe/Brussels"),
    ("Copenhagen", 55.676, 12.568, 2.1, 13.0, "Europe/Copenhagen"),
    ("Stockholm", 59.329, 18.069, 2.4, 14.0, "Europe/Stockholm"),
    ("Oslo", 59.914, 10.752, 1.6, 11.0, "Europe/Oslo"),
    ("Lyon", 45.764, 4.836, 2.3, 13.0, "Europe/Paris"),
    ("Marseille", 43.296, 5.370, 1.9, 12.0, "Europe/Paris"),
]
_CITY_WEIGHTS = [c[3] for c in CITIES]
_KM_PER_DEG = 111.2

# (share, start, end, days): None = no shift hours (always on shift when on duty).
SHIFTS = [
    (0.40, None, None, None),
    (0.30, time(7, 0), time(15, 0), "12345"),
    (0.15, time(14, 0), time(22, 0), "1234567"),
    (0.15, time(22, 0), time(6, 0), "123456"),  # overnight
]


@dataclass(frozen=True)
class Tech:
    id: int
    lat: float
    lon: float
    skills: tuple[str, ...]
    active: bool
    on_duty: bool
    open_jobs: int
    capacity: int
    shift_start: time | None
    shift_end: time | None
    shift_days: str | None
    timezone: str


@dataclass(frozen=True)
class Query:
    lat: float
    lon: float
    skill: str
    now: datetime


def _uniform_point(rng: random.Random) -> tuple[float, float]:
    min_lat, max_lat, min_lon, max_lon = REGION
    # Uniform by area, not by degree: latitude through its sine.
    s = rng.uniform(math.sin(math.radians(min_lat)), math.sin(math.radians(max_lat)))
    return math.degrees(math.asin(s)), rng.uniform(min_lon, max_lon)


def _near(rng: random.Random, lat: float, lon: float, spread_km: float) -> tuple[float, float]:
    dlat = rng.gauss(0.0, spread_km) / _KM_PER_DEG
    dlon = rng.gauss(0.0, spread_km) / (_KM_PER_DEG * math.cos(math.radians(lat)))
    return max(-89.9, min(89.9, lat + dlat)), max(-179.9, min(179.9, lon + dlon))


def _zone_for(lon: float) -> str:
    if lon < -6.0:
        return "Europe/Lisbon"
    if lon < 1.0:
        return "Europe/London"
    if lon < 24.0:
        return "Europe/Berlin"
    return "Europe/Bucharest"


def technicians(n: int, layout: str, seed: int, *, capacity: tuple[int, int] = (1, 5)) -> list[Tech]:
    rng = random.Random(f"{seed}:{layout}:{n}:technicians")
    out: list[Tech] = []
    shift_weights = [s[0] for s in SHIFTS]
    for i in range(1, n + 1):
        if layout == "uniform":
            lat, lon = _uniform_point(rng)
            zone = _zone_for(lon)
        else:
            city = rng.choices(CITIES, weights=_CITY_WEIGHTS)[0]
            lat, lon = _near(rng, city[1], city[2], city[4])
            zone = city[5]
        skills = rng.sample(SKILLS, 3)
        cap = rng.randint(*capacity)
        at_capacity = rng.random() < 0.15
        open_jobs = cap if at_capacity else rng.randint(0, cap - 1)
        _, start, end, days = rng.choices(SHIFTS, weights=shift_weights)[0]
        out.append(
            Tech(
                id=i,
                lat=round(lat, 6),
                lon=round(lon, 6),
                skills=tuple(sorted(skills)),
                active=rng.random() >= 0.02,
                on_duty=rng.random() < 0.60,
                open_jobs=open_jobs,
                capacity=cap,
                shift_start=start,
                shift_end=end,
                shift_days=days,
                timezone=zone,
            )
        )
    return out


def queries(count: int, layout: str, seed: int, *, spread_km: float = 15.0) -> list[Query]:
    rng = random.Random(f"{seed}:{layout}:queries")
    out: list[Query] = []
    for _ in range(count):
        if layout == "uniform":
            lat, lon = _uniform_point(rng)
        else:
            city = rng.choices(CITIES, weights=_CITY_WEIGHTS)[0]
            lat, lon = _near(rng, city[1], city[2], spread_km)
        skill = rng.choice(SKILLS)
        now = T0 + timedelta(minutes=rng.randrange(7 * 24 * 60))
        out.append(Query(lat=round(lat, 6), lon=round(lon, 6), skill=skill, now=now))
    return out


def load(engine: Engine, techs: list[Tech], *, batch: int = 20_000) -> None:
    """Replace every technician (and what hangs off them) with ``techs``: Core bulk inserts."""
    tech_table = Technician.__table__  # type: ignore[attr-defined]
    skill_table = TechnicianSkill.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE technician, technician_skill, job, job_event RESTART IDENTITY CASCADE"))
        else:
            for table in ("job_event", "job", "technician_skill", "technician"):
                conn.execute(text(f"DELETE FROM {table}"))
        for start in range(0, len(techs), batch):
            chunk = techs[start : start + batch]
            conn.execute(
                insert(tech_table),
                [
                    {
                        "id": t.id,
                        "name": f"Technician {t.id}",
                        "phone": None,
                        "lat": t.lat,
                        "lon": t.lon,
                        "location_at": T0,
                        "capacity": t.capacity,
                        "open_jobs": t.open_jobs,
                        "on_duty": t.on_duty,
                        "active": t.active,
                        "shift_start": t.shift_start,
                        "shift_end": t.shift_end,
                        "shift_days": t.shift_days,
                        "timezone": t.timezone,
                        "home_branch": None,
                        "created_at": T0,
                        "updated_at": T0,
                    }
                    for t in chunk
                ],
            )
            conn.execute(
                insert(skill_table),
                [
                    {"technician_id": t.id, "skill": s, "lat_band": lat_band(t.lat), "lat": t.lat, "lon": t.lon}
                    for t in chunk
                    for s in t.skills
                ],
            )
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('technician', 'id'), :n)"), {"n": max(len(techs), 1)}
            )
    # Statistics as a running PostgreSQL would have them (autovacuum analyses new tables).
    # SQLite is left as the service leaves it: nothing runs ANALYZE there.
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE technician"))
            conn.execute(text("VACUUM ANALYZE technician_skill"))
