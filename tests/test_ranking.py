"""Who is available and who is nearest, without a database; and the database search agrees
with measuring every technician."""

import random
from datetime import UTC, datetime, time

from geopy.distance import geodesic
from sqlalchemy import insert

from dispatch.assignment.ranking import CandidateRow, PassedOver, passed_over_reason, rank
from dispatch.assignment.service import find_nearest
from dispatch.geo import lat_band
from dispatch.technicians.models import Technician, TechnicianSkill
from dispatch.technicians.shifts import is_on_shift

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def row(tid, lat, lon, **kw):
    base = dict(
        technician_id=tid,
        name=f"t{tid}",
        lat=lat,
        lon=lon,
        active=True,
        on_duty=True,
        open_jobs=0,
        capacity=1,
        shift_start=None,
        shift_end=None,
        shift_days=None,
        timezone="UTC",
    )
    base.update(kw)
    return CandidateRow(**base)


def test_reasons_for_passing_someone_over_come_in_a_fixed_order():
    assert passed_over_reason(row(1, 0, 0, active=False, on_duty=False), NOW, frozenset()) is PassedOver.inactive
    assert passed_over_reason(row(1, 0, 0, on_duty=False), NOW, frozenset()) is PassedOver.off_duty
    assert passed_over_reason(row(1, 0, 0, open_jobs=1), NOW, frozenset()) is PassedOver.at_capacity
    assert passed_over_reason(row(1, 0, 0), NOW, frozenset({1})) is PassedOver.taken
    late = row(1, 0, 0, shift_start=time(14), shift_end=time(22))
    assert passed_over_reason(late, NOW, frozenset()) is PassedOver.off_shift
    assert passed_over_reason(row(1, 0, 0), NOW, frozenset()) is None


def test_the_exact_distance_decides_between_close_estimates():
    # Two technicians 10 km away east and north: the sphere and the ellipsoid disagree on
    # which is nearer; the ellipsoid (geodesic) decides.
    east = row(1, 52.0, 21.0 + 10 / 68.7)
    north = row(2, 52.0 + 10 / 111.3, 21.0)
    ranking = rank([east, north], lat=52.0, lon=21.0, now=NOW)
    exact = {r.technician_id: geodesic((52.0, 21.0), (r.lat, r.lon)).km for r in (east, north)}
    assert ranking.best.row.technician_id == min(exact, key=exact.get)


def test_nobody_available_means_no_best():
    ranking = rank([row(1, 52, 21, on_duty=False)], lat=52, lon=21, now=NOW)
    assert ranking.best is None and len(ranking.candidates) == 1


def _oracle(techs, lat, lon, skill):
    best = None
    for t in techs:
        if skill not in t["skills"] or not (t["active"] and t["on_duty"] and t["open_jobs"] < t["capacity"]):
            continue
        if not is_on_shift(NOW, start=t["shift_start"], end=t["shift_end"], days=None, timezone="Europe/Warsaw"):
            continue
        d = geodesic((lat, lon), (t["lat"], t["lon"])).km
        if best is None or d < best:
            best = d
    return best


def test_the_database_search_agrees_with_measuring_everyone(database, settings):
    rng = random.Random(42)
    skills = [f"skill {i}" for i in range(6)]
    cities = [(52.23, 21.01), (50.06, 19.94), (51.11, 17.03), (54.35, 18.65)]
    techs = []
    for i in range(1, 401):
        clat, clon = rng.choice(cities) if rng.random() < 0.7 else (rng.uniform(49, 55), rng.uniform(14, 24))
        lat, lon = clat + rng.gauss(0, 0.1), clon + rng.gauss(0, 0.15)
        shift = rng.random() < 0.3
        techs.append(
            dict(
                id=i,
                name=f"t{i}",
                lat=lat,
                lon=lon,
                capacity=2,
                open_jobs=rng.choice([0, 0, 1, 2]),
                on_duty=rng.random() < 0.7,
                active=rng.random() < 0.95,
                shift_start=time(14) if shift else None,
                shift_end=time(22) if shift else None,
                timezone="Europe/Warsaw",
                created_at=NOW,
                updated_at=NOW,
                skills=rng.sample(skills, 2),
            )
        )
    with database.transaction() as session:
        session.execute(insert(Technician), [{k: v for k, v in t.items() if k != "skills"} for t in techs])
        session.execute(
            insert(TechnicianSkill),
            [
                {"technician_id": t["id"], "skill": s, "lat": t["lat"], "lon": t["lon"], "lat_band": lat_band(t["lat"])}
                for t in techs
                for s in t["skills"]
            ],
        )
    with database.transaction(write=False) as session:
        for _ in range(150):
            clat, clon = rng.choice(cities)
            lat, lon = clat + rng.gauss(0, 0.2), clon + rng.gauss(0, 0.3)
            skill = rng.choice(skills)
            found = find_nearest(session=session, lat=lat, lon=lon, skill=skill, now=NOW, settings=settings)
            expected = _oracle(techs, lat, lon, skill)
            if expected is None:
                assert found.best is None
            else:
                assert found.best is not None
                assert abs(found.best.distance_km(lat, lon) - expected) < 0.001  # within 1 m
