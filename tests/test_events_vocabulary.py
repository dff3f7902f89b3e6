"""The timeline speaks a closed vocabulary (``EventType``): every entry written is a member,
every member is written somewhere and is either delivered to webhook subscribers under public
names or kept private on purpose, and every public type has an entry that sends it. A new type
without its catalogue entry, a writer that spells a type as a bare string, or a public type
nothing sends fails here."""

from __future__ import annotations

import ast
import enum
from pathlib import Path

import pytest
from conftest import job_body
from proof import good_photo, tap, upload
from receiver import Receiver
from sqlalchemy import text

from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.sla import watcher as sla_watcher
from dispatch.webhooks.catalogue import CATALOGUE, PRIVATE, WEBHOOK_TYPES, public_types
from dispatch.webhooks.worker import Worker

SRC = Path(__file__).resolve().parents[1] / "src" / "dispatch"
VOCABULARY = SRC / "events" / "vocabulary.py"
CATALOGUE_FILE = SRC / "webhooks" / "catalogue.py"


def unmapped(members: type[enum.Enum], catalogue: dict) -> set[str]:
    """Members of ``members`` the catalogue says nothing about (compared by stored value)."""
    return {m.value for m in members} - {k.value for k in catalogue}


# The catalogue ------------------------------------------------------------------------------


def test_every_timeline_type_is_public_or_deliberately_private():
    assert unmapped(EventType, CATALOGUE) == set()
    assert set(CATALOGUE) == set(EventType)
    for kind, public in CATALOGUE.items():
        assert public is PRIVATE or (public and set(public) <= set(WEBHOOK_TYPES)), kind


def test_a_type_added_without_a_catalogue_entry_is_caught():
    grown = enum.Enum(
        "Grown", {**{m.name: m.value for m in EventType}, "warranty_checked": "warranty_checked"}, type=str
    )
    assert unmapped(grown, CATALOGUE) == {"warranty_checked"}


def test_every_public_type_is_sent_by_some_timeline_entry():
    sent = {t for public in CATALOGUE.values() for t in public}
    sent |= set(public_types(EventType.status_changed, {"to": "completed"}))
    assert sent == set(WEBHOOK_TYPES)


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        # What subscribers got before the vocabulary was closed, they still get.
        ("job_created", {}, ("job.created",)),
        ("dispatched", {}, ("job.assigned",)),
        ("assigned", {}, ("job.assigned",)),
        ("sent_back", {}, ("job.assigned",)),
        ("status_changed", {"to": "en_route"}, ("job.status_changed",)),
        ("status_changed", {"to": "completed"}, ("job.completed", "job.status_changed")),
        ("parts_backordered", {}, ("job.parts_backordered",)),
        ("parts_arrived", {}, ("job.parts_arrived",)),
        ("breach_predicted", {}, ("job.at_risk",)),
        ("sla_at_risk", {}, ("job.at_risk",)),
        ("sla_no_show", {}, ("job.at_risk",)),
        ("sla_breached", {}, ("job.breached",)),
        ("job_closed", {}, ("job.closed",)),
        ("sla_warning", {}, ()),
        ("visit_started", {}, ()),
    ],
)
def test_stored_timeline_types_map_to_the_public_types_they_always_did(kind, data, expected):
    assert public_types(kind, data) == expected


def test_a_type_outside_the_vocabulary_is_refused_not_silently_dropped():
    # "at_risk", "breached", "closed" and "reassigned" were mapped once but never written.
    for stray in ("at_risk", "breached", "closed", "reassigned", "Job_Created", ""):
        with pytest.raises(ValueError):
            public_types(stray, {})
        with pytest.raises(ValueError):
            events.entry(stray, "test")  # type: ignore[arg-type]
    assert events.entry("job_created", "test")["type"] is EventType.job_created  # type: ignore[arg-type]


# Rules that run over the source -------------------------------------------------------------


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(SRC.rglob("*.py"))]


def _type_arguments(call: ast.Call) -> list[ast.expr]:
    """The arguments of a call that name a timeline type: ``type=`` and ``how=`` keywords, and
    the first positional argument of ``events.entry``."""
    named = [k.value for k in call.keywords if k.arg in ("type", "how")]
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "entry" and call.args:
        named.append(call.args[0])
    return named


def test_writers_name_timeline_types_from_the_vocabulary_not_as_strings():
    values = {m.value for m in EventType}
    spelled = [
        f"{path.relative_to(SRC)}:{node.lineno} {arg.value!r}"
        for path, module in _modules()
        for node in ast.walk(module)
        if isinstance(node, ast.Call)
        for arg in _type_arguments(node)
        if isinstance(arg, ast.Constant) and arg.value in values
    ]
    assert spelled == []


def test_every_member_has_a_writer():
    """No member that nothing writes: each is named (``EventType.x``) outside the vocabulary
    and the catalogue."""
    named = {
        node.attr
        for path, module in _modules()
        if path not in (VOCABULARY, CATALOGUE_FILE)
        for node in ast.walk(module)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "EventType"
    }
    assert {m.name for m in EventType} - named == set()


def test_the_timeline_documents_its_types_in_the_api_spec(api):
    spec = api.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert schemas["JobEventPublic"]["properties"]["type"] == {"$ref": "#/components/schemas/EventType"}
    assert schemas["EventType"]["enum"] == [m.value for m in EventType]


# A whole workflow, through HTTP --------------------------------------------------------------


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def worker(settings, api):
    settings.webhook_allow_private_urls = True  # the receiver is on 127.0.0.1
    w = Worker(database=api.database, settings=settings, clock=api.clock)
    yield w
    w.close()


def test_a_jobs_whole_life_speaks_the_vocabulary_and_reaches_every_public_type(api, settings, worker, receiver):
    r = api.post("/v1/webhooks", {"url": receiver.url, "event_types": list(WEBHOOK_TYPES)}, who="admin")
    assert r.status_code == 201, r.text
    for body in (
        {"code": "WAW-C", "name": "Warsaw Centre", "kind": "branch", "lat": 52.2350, "lon": 21.0100},
        {"code": "CENTRAL", "name": "Central", "kind": "central", "lat": 51.7592, "lon": 19.4560},
    ):
        assert api.post("/v1/locations", body, who="warehouse").status_code == 201
    belt = {"sku": "BELT-1200", "name": "Drum belt", "categories": ["washing machine"], "lead_time_hours": 72}
    assert api.post("/v1/parts", belt, who="warehouse").status_code == 201

    # A fault, a technician, a part nobody has (its lead time outlasts the deadline), the part
    # coming in, the technician sent back, the fix with a photo, a sign-off and a callback.
    tech = api.technician()
    job = api.post("/v1/jobs", job_body(), who="dispatcher").json()
    assert api.post(f"/v1/jobs/{job['id']}/dispatch").json()["technician_id"] == tech["id"]
    phone = api.as_technician(tech["id"])
    tap(api, job["id"], "en_route", phone)
    api.clock.advance(minutes=20)
    tap(api, job["id"], "on_site", phone)
    r = api.post(f"/v1/jobs/{job['id']}/parts", {"sku": "BELT-1200", "quantity": 1}, headers=phone)
    assert r.json()["state"] == "backordered", r.text
    api.clock.advance(hours=2)
    r = api.post("/v1/locations/WAW-C/receipts", {"sku": "BELT-1200", "quantity": 1}, who="warehouse")
    assert r.status_code == 201, r.text
    tap(api, job["id"], "en_route", phone)
    api.clock.advance(minutes=20)
    tap(api, job["id"], "on_site", phone)
    photo = upload(api, job["id"], good_photo(api), phone).json()
    api.clock.advance(minutes=5)
    tap(api, job["id"], "completed", phone)
    api.post(f"/v1/jobs/{job['id']}/signoff", {"signer_name": "Maria", "photo_id": photo["id"]}, headers=phone)
    r = api.post(f"/v1/jobs/{job['id']}/callbacks", {"reached": True, "fixed": True, "satisfaction": 5})
    assert r.json()["job_status"] == "closed", r.text
    # And a job nobody can take, left until it is late.
    forgotten = api.post("/v1/jobs", job_body(), who="dispatcher").json()
    api.clock.advance(hours=25)
    sla_watcher.run_pass(api.database, api.clock.now, settings)
    for _ in range(5):
        worker.drain()

    timelines = {
        j["id"]: [e["type"] for e in api.get(f"/v1/jobs/{j['id']}/events", params={"limit": 200}).json()["items"]]
        for j in (job, forgotten)
    }
    assert {"parts_backordered", "parts_arrived", "sent_back", "job_closed"} <= set(timelines[job["id"]])
    assert {"sla_at_risk", "sla_breached"} <= set(timelines[forgotten["id"]])
    with api.database.transaction(write=False) as session:
        stored = session.execute(text("SELECT id, job_id, type FROM job_event ORDER BY id")).all()
    assert {t for _, _, t in stored} <= {m.value for m in EventType}  # plain values, as always
    assert [t for _, job_id, t in stored if job_id == job["id"]] == timelines[job["id"]]

    delivered = [r.payload for r in receiver.accepted]
    assert {p["type"] for p in delivered} == set(WEBHOOK_TYPES)
    for p in delivered:  # each delivery is its timeline entry's public type, and only those are sent
        event = p["data"]["event"]
        assert p["type"] in public_types(event["type"], event["data"])
    private = [t for types in timelines.values() for t in types if not public_types(t, {"to": None})]
    assert private  # visits, photos, warnings: written, never sent
    assert len(delivered) == sum(1 for types in timelines.values() for t in types if t not in private)


def test_refusing_a_stray_type_writes_nothing(api):
    job = api.job()
    with pytest.raises(ValueError), api.database.transaction() as session:
        events.record(session=session, job_id=job["id"], type="closed", actor="test", now=api.clock.now())  # type: ignore[arg-type]
    assert [e["type"] for e in api.get(f"/v1/jobs/{job['id']}/events").json()["items"]] == ["job_created"]
