"""A realistic demo: a service centre in Warsaw with technicians, an outlet and open jobs."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select

from dispatch.auth import service as auth
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.clock import SystemClock
from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.geocoding.service import Geocoded
from dispatch.jobs import flows
from dispatch.jobs.schemas import JobCreate
from dispatch.outlets import service as outlets
from dispatch.technicians import service as technicians
from dispatch.technicians.models import Technician
from dispatch.technicians.schemas import Shift, TechnicianCreate

CATEGORIES = [
    "washing machine",
    "refrigerator",
    "dishwasher",
    "oven",
    "hob",
    "microwave",
    "dryer",
    "television",
    "sofa",
    "wardrobe",
    "kitchen cabinet",
    "bed",
]
# Districts of Warsaw (centre lat, lon) where the technicians live and start their day.
DISTRICTS = {
    "Śródmieście": (52.2297, 21.0122),
    "Mokotów": (52.1935, 21.0343),
    "Wola": (52.2364, 20.9594),
    "Praga-Południe": (52.2390, 21.0800),
    "Bielany": (52.2870, 20.9390),
    "Ursynów": (52.1395, 21.0460),
    "Bemowo": (52.2540, 20.9110),
    "Targówek": (52.2900, 21.0500),
    "Białołęka": (52.3260, 21.0010),
    "Wawer": (52.1960, 21.1650),
}
FIRST = ["Anna", "Piotr", "Kasia", "Marek", "Ola", "Tomek", "Ewa", "Jan", "Zosia", "Paweł", "Magda", "Adam"]
LAST = ["Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski", "Zielińska", "Szymański"]
JOBS = [
    (
        "Maria Dąbrowska",
        "Marszałkowska 104, Warszawa",
        (52.2319, 21.0067),
        "washing machine",
        "Drum does not spin",
        "normal",
    ),
    (
        "Krzysztof Mazur",
        "Puławska 145, Warszawa",
        (52.1880, 21.0220),
        "refrigerator",
        "Not cooling; food spoiling",
        "high",
    ),
    (
        "Agnieszka Król",
        "Górczewska 124, Warszawa",
        (52.2400, 20.9300),
        "dishwasher",
        "Water leaking onto the floor",
        "emergency",
    ),
    ("Tomasz Pawlak", "Grochowska 207, Warszawa", (52.2470, 21.0950), "sofa", "Recliner mechanism broken", "low"),
    ("Barbara Wróbel", "Aleja KEN 36, Warszawa", (52.1450, 21.0500), "oven", "Door glass cracked", "emergency"),
    ("Jakub Górski", "ul. Nieznana 7, Warszawa", None, "wardrobe", "Sliding door off its track", "normal"),
]
WARSAW = "Europe/Warsaw"


def load(*, database: Database, settings: Settings, seed: int = 7) -> list[tuple[str, str, str]] | None:
    """Load the demo once; returns (role, bound to, key) rows, or None if it was already there."""
    now = SystemClock().now()
    rng = random.Random(seed)
    with database.transaction() as session:
        if session.scalar(select(func.count()).select_from(Technician)):
            return None
        created = []
        for i in range(40):
            district, (lat, lon) = rng.choice(list(DISTRICTS.items()))
            early = rng.random() < 0.5
            tech = technicians.create(
                session=session,
                technician_in=TechnicianCreate(
                    name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                    phone=f"+48 600 {100 + i:03d} {rng.randint(100, 999)}",
                    skills=rng.sample(CATEGORIES, 3),
                    lat=lat + rng.uniform(-0.02, 0.02),
                    lon=lon + rng.uniform(-0.03, 0.03),
                    capacity=rng.choice([2, 3, 4]),
                    on_duty=rng.random() < 0.8,
                    shift=Shift(
                        start="07:00" if early else "12:00",
                        end="15:00" if early else "20:00",
                        days=[1, 2, 3, 4, 5, 6],
                        timezone=WARSAW,
                    )
                    if i % 4
                    else None,  # every fourth technician is on call around the clock
                    home_branch="WAW-" + district[:3].upper(),
                ),
                now=now,
            )
            created.append(tech)
        outlet = outlets.create(session=session, code="mediamax-arkadia", name="MediaMax Arkadia", now=now)
        keys: list[tuple[str, str, str]] = []
        admin_secret = settings.admin_key
        if admin_secret:
            auth.ensure_admin_key(session=session, secret=admin_secret, now=now)
            keys.append(("admin", "-", "(DISPATCH_ADMIN_KEY)"))
        else:
            _, admin_secret = auth.issue(session=session, role=Role.admin, now=now, name="demo admin")
            keys.append(("admin", "-", admin_secret))
        for role in (Role.dispatcher, Role.supervisor, Role.warehouse):
            _, secret = auth.issue(session=session, role=role, now=now, name=f"demo {role.value}")
            keys.append((role.value, "-", secret))
        _, secret = auth.issue(session=session, role=Role.outlet, outlet_id=outlet.id, now=now, name="demo outlet")
        keys.append(("outlet", outlet.code, secret))
        dispatcher = Caller(key_id=0, role=Role.dispatcher)
        outlet_caller = Caller(key_id=0, role=Role.outlet, outlet_id=outlet.id)
        first_assigned: int | None = None
        for n, (name, address, coords, category, fault, priority) in enumerate(JOBS):
            job_in = JobCreate.model_validate(
                {
                    "customer": {
                        "name": name,
                        "phone": f"+48 22 555 {n:02d} 00",
                        "address": address,
                        **({"lat": coords[0], "lon": coords[1]} if coords else {}),
                    },
                    "product": {"category": category, "model": "demo model", "serial": f"SN{1000 + n}"},
                    "fault": fault,
                    "priority": priority,
                    "reported_at": (now - timedelta(hours=rng.choice([1, 5, 12, 19, 22]))).isoformat(),
                    "external_ref": f"ORD-{2026_000 + n}",
                },
                strict=False,
            )
            caller = outlet_caller if n % 2 else dispatcher
            placed = Geocoded(*coords, cached=True) if coords else None
            job = flows.receive(
                session=session, job_in=job_in, placed=placed, caller=caller, now=now, settings=settings
            )
            if first_assigned is None and job.technician_id is not None:
                first_assigned = job.technician_id
        tech_id = first_assigned or created[0].id
        _, secret = auth.issue(
            session=session, role=Role.technician, technician_id=tech_id, now=now, name="demo technician"
        )
        keys.append(("technician", f"technician {tech_id}", secret))
        return keys
