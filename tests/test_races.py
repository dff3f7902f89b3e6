"""Races: many dispatchers, phones and app processes at once never overbook a technician.

The invariant every test here checks (docs/decisions.md, "Dispatch", atomicity): for
each technician, ``open_jobs`` equals the number of their jobs that hold capacity (assigned,
en route, on site), and ``0 <= open_jobs <= capacity``. Racing requests that lose get a clean
409 problem, never a 5xx and never "database is locked".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from support import servers
from support.api import CUSTOMER, job_body
from support.concurrency import run_together
from support.database import empty
from support.invariants import assert_capacity_consistent, stock_problems
from support.moments import T0
from support.problems import assert_no_server_errors
from support.workflow import add_outlet, send_status, tap

from dispatch.assignment import service as assignment
from dispatch.auth import service as auth
from dispatch.auth.models import ApiKey, Role
from dispatch.auth.service import SYSTEM, Caller
from dispatch.config import Settings
from dispatch.database.core import Database, make_engine
from dispatch.errors import Conflict
from dispatch.geocoding.service import Geocoded
from dispatch.jobs import flows
from dispatch.jobs.lifecycle import HOLDS_CAPACITY, REASSIGNABLE, TRANSITIONS, JobStatus
from dispatch.jobs.models import Job
from dispatch.jobs.schemas import JobCreate
from dispatch.parts import service as parts
from dispatch.parts import stock
from dispatch.parts.models import JobPart, Location
from dispatch.parts.schemas import LocationCreate, PartCreate
from dispatch.technicians import service as technicians
from dispatch.technicians.models import Technician
from dispatch.technicians.schemas import TechnicianCreate

DISPATCHER = Caller(key_id=-1, role=Role.dispatcher)  # a dispatcher's key, for the timeline


# Helpers --------------------------------------------------------------------------------


def add_technicians(database: Database, count: int, *, skill: str, capacity: int = 1, spread: bool = True) -> list[int]:
    ids = []
    with database.transaction() as session:
        for i in range(count):
            # A ring of technicians around the customer, a few hundred metres apart.
            offset = 0.002 * (i + 1) if spread else 0.002
            tech = technicians.create(
                session=session,
                technician_in=TechnicianCreate(
                    name=f"Tech {skill} {i}",
                    skills=[skill],
                    lat=CUSTOMER[0] + offset,
                    lon=CUSTOMER[1] + (offset if i % 2 else -offset),
                    capacity=capacity,
                ),
                now=T0,
            )
            ids.append(tech.id)
    return ids


def add_jobs(
    database: Database, count: int, *, skill: str, settings: Settings, now: datetime = T0, same_spot: bool = True
) -> list[int]:
    ids = []
    with database.transaction() as session:
        for i in range(count):
            lat, lon = CUSTOMER if same_spot else (CUSTOMER[0] + 0.001 * (i % 7), CUSTOMER[1] - 0.001 * (i % 5))
            job = flows.receive(
                session=session,
                job_in=JobCreate.model_validate(
                    job_body(product={"category": skill}, customer={"lat": lat, "lon": lon})
                ),
                placed=Geocoded(lat, lon, cached=True),
                caller=SYSTEM,
                now=now,
                settings=settings,
            )
            ids.append(job.id)
    return ids


# 1. Racing dispatches at the service level (PostgreSQL: real row locks) -------------------


@pytest.mark.postgres_only
@pytest.mark.parametrize("same_spot", [True, False], ids=["same-customer", "nearby-customers"])
def test_racing_dispatches_never_overbook_a_technician(settings, database, same_spot):
    """10 technicians with room for one job each, 40 jobs dispatched at the same instant, each
    in its own transaction: exactly 10 win, one per technician; 30 get a clean conflict."""
    # Enough connections that all 40 transactions are truly in flight at once.
    wide = Database(make_engine(settings.model_copy(update={"max_concurrent_requests": 41})))
    try:
        for round_ in range(4):
            skill = f"race {round_}"
            techs = add_technicians(database, 10, skill=skill, capacity=1)
            job_ids = add_jobs(database, 40, skill=skill, settings=settings, same_spot=same_spot)

            def dispatch(job_id: int, caller: Caller) -> tuple[str, Any]:
                try:
                    with wide.transaction() as session:
                        outcome = assignment.dispatch(
                            session=session, job_id=job_id, caller=caller, now=T0, settings=settings
                        )
                        technician_id = outcome.choice.technician_id
                except Conflict as exc:  # includes NoTechnicianAvailable: the clean 409
                    return "conflict", exc.code
                return "assigned", technician_id

            results = run_together(
                [lambda j=j, c=(SYSTEM if i % 2 else DISPATCHER): dispatch(j, c) for i, j in enumerate(job_ids)]
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, f"round {round_}: {errors[:3]}"
            assigned = [tid for kind, tid in results if kind == "assigned"]
            refused = [code for kind, code in results if kind == "conflict"]
            assert len(assigned) == 10, f"round {round_}: {Counter(k for k, _ in results)}"
            assert len(refused) == 30
            assert set(refused) <= {"no-technician-available", "dispatch-contention"}, Counter(refused)
            assert sorted(assigned) == sorted(techs), "a technician got two jobs, or one got none"

            with database.transaction(write=False) as session:
                open_jobs = dict(
                    session.execute(select(Technician.id, Technician.open_jobs).where(Technician.id.in_(techs))).all()
                )
                rows = session.execute(select(Job.id, Job.status, Job.technician_id).where(Job.id.in_(job_ids))).all()
            assert open_jobs == {tid: 1 for tid in techs}
            held = [r for r in rows if r.status is JobStatus.assigned]
            assert len(held) == 10 and len({r.technician_id for r in held}) == 10
            assert all(r.status is JobStatus.new and r.technician_id is None for r in rows if r not in held)
            assert_capacity_consistent(database)
    finally:
        wide.dispose()


# 2. The same race over HTTP, against several app processes ---------------------------------


ADMIN_KEY = "race-admin-key-0123456789abcdef"


@pytest.fixture
def app_servers(settings, database, tmp_path) -> Iterator[list[servers.Server]]:
    """Two uvicorn servers with two workers each, on the test database."""
    with database.transaction() as session:  # present before start-up: see the bootstrap race test
        auth.ensure_admin_key(session=session, secret=ADMIN_KEY, now=datetime.now(UTC))
    env = {
        "DATABASE_URL": settings.database_url,
        "DISPATCH_ADMIN_KEY": ADMIN_KEY,
        "DISPATCH_ENVIRONMENT": "test",
        "DISPATCH_DATA_DIR": str(tmp_path / "server-data"),
        "DISPATCH_AUTO_DISPATCH": "false",
    }
    with servers.running(env=env, log_dir=tmp_path, count=2, workers=2) as running:
        yield running
    # (the `database` fixture truncates after the servers are stopped: fixtures end in reverse)


@pytest.mark.postgres_only
def test_racing_dispatches_across_app_processes_never_overbook(settings, database, app_servers):
    """40 POST /dispatch split over two servers (four worker processes): only the database's
    conditional UPDATE stands between them, so 10 x 200 and 30 clean 409 problems."""
    now = datetime.now(UTC)  # the servers run on the real clock
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    clients = [httpx.Client(base_url=s.base_url, headers=headers, timeout=30.0) for s in app_servers]
    try:
        for round_ in range(2):
            skill = f"http race {round_}"
            techs = add_technicians(database, 10, skill=skill, capacity=1)
            job_ids = add_jobs(database, 40, skill=skill, settings=settings, now=now)
            responses = run_together(
                [
                    lambda j=j, c=clients[i % len(clients)]: c.post(f"/v1/jobs/{j}/dispatch")
                    for i, j in enumerate(job_ids)
                ]
            )
            errors = [r for r in responses if isinstance(r, BaseException)]
            assert not errors, errors[:3]
            statuses = Counter(r.status_code for r in responses)
            assert statuses == {200: 10, 409: 30}, {
                code: [r.text[:300] for r in responses if r.status_code == code][:2] for code in statuses
            }
            for r in responses:
                if r.status_code == 409:
                    assert r.headers["content-type"].startswith("application/problem+json")
                    assert r.json()["code"] in {"no-technician-available", "dispatch-contention"}, r.text
            winners = [r.json()["technician_id"] for r in responses if r.status_code == 200]
            assert sorted(winners) == sorted(techs)
            assert_capacity_consistent(database)
    finally:
        for client in clients:
            client.close()
    for server in app_servers:
        assert server.process.poll() is None, f"a server died during the race\n{server.log_tail()}"
        assert "Traceback" not in server.log_tail(100_000), server.log_tail()


def test_bootstrapping_the_admin_key_from_several_workers_at_once_is_safe(database):
    """Every worker of `dispatch serve --workers N` (or every replica) runs ensure_admin_key at
    start-up: whoever loses the insert race finds the winner's key instead of failing."""
    secret = "bootstrap-race-key-0123456789"

    def bootstrap() -> int:
        with database.transaction() as session:
            return auth.ensure_admin_key(session=session, secret=secret, now=T0).id

    results = run_together([bootstrap for _ in range(8)])
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} of 8 start-ups failed: {errors[0]!r}"
    with database.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.name == "bootstrap admin")) == 1


# 3. Concurrent intake --------------------------------------------------------------------


def test_concurrent_intake_queues_writers_instead_of_failing(api):
    responses = run_together(
        [lambda i=i: api.post("/v1/jobs", job_body(external_ref=f"INTAKE-{i}")) for i in range(40)]
    )
    errors = [r for r in responses if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    failed = [(r.status_code, r.text[:300]) for r in responses if r.status_code != 201]
    assert not failed, failed[:3]
    assert not any("database is locked" in r.text for r in responses)
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 40
    with api.database.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 40
    page = api.get("/v1/jobs", params={"limit": 100}).json()
    assert {j["id"] for j in page["items"]} == ids


def test_concurrent_intake_from_services_in_their_own_transactions(settings, database):
    """Read-then-write transactions straight on the services, as a worker or import would."""

    def intake(i: int) -> int:
        with database.transaction() as session:
            job = flows.receive(
                session=session,
                job_in=JobCreate.model_validate(job_body(external_ref=f"SVC-{i}")),
                placed=Geocoded(*CUSTOMER, cached=True),
                caller=SYSTEM,
                now=T0,
                settings=settings,
            )
            return job.id

    results = run_together([lambda i=i: intake(i) for i in range(40)])
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert len(set(results)) == 40
    with database.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 40


def test_intake_from_several_app_processes_at_once_queues_writers(database, app_servers):
    """On SQLite the in-process lock cannot help across processes: BEGIN IMMEDIATE and the
    busy timeout must queue them."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    clients = [httpx.Client(base_url=s.base_url, headers=headers, timeout=30.0) for s in app_servers]
    try:
        responses = run_together(
            [
                lambda i=i: clients[i % len(clients)].post("/v1/jobs", json=job_body(external_ref=f"PROC-{i}"))
                for i in range(40)
            ]
        )
    finally:
        for client in clients:
            client.close()
    assert_no_server_errors(*responses)
    assert Counter(r.status_code for r in responses) == {201: 40}
    with database.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 40


@pytest.mark.parametrize("sender", ["outlet", "dispatcher"])
def test_the_same_order_number_sent_many_times_at_once_is_stored_once(api, sender):
    """Outlet jobs are guarded by the (outlet_id, external_ref) constraint; dispatcher jobs,
    whose outlet_id is NULL, by a partial unique index. Losers get a 409, never a 500."""
    if sender == "outlet":
        outlet = add_outlet(api, "shop-1", "Shop 1")
        headers = api.as_outlet(outlet["id"])
    else:
        headers = api.headers("dispatcher")
    responses = run_together(
        [lambda: api.post("/v1/jobs", job_body(external_ref="ORD-1"), headers=headers) for _ in range(20)]
    )
    assert_no_server_errors(*responses)
    statuses = Counter(r.status_code for r in responses)
    codes = Counter(r.json()["code"] for r in responses if r.status_code == 409)
    with api.database.transaction(write=False) as session:
        stored = session.scalar(select(func.count()).select_from(Job).where(Job.external_ref == "ORD-1"))
    assert stored == 1, f"ORD-1 stored {stored} times; responses {dict(statuses)}"
    assert statuses == {201: 1, 409: 19}, statuses
    assert set(codes) <= {"duplicate-external-ref", "conflicts-with-existing-data"}, codes


# 4. Phones racing dispatchers -------------------------------------------------------------


ROUNDS = 12


def _assign(api, job_id: int, technician_id: int):  # type: ignore[no-untyped-def]
    return api.post(f"/v1/jobs/{job_id}/assign", {"technician_id": technician_id, "reason": "closer"})


def _job(api, job_id: int) -> dict[str, Any]:
    return api.get(f"/v1/jobs/{job_id}").json()


def _open_jobs(api, *tech_ids: int) -> list[int]:
    return [api.get(f"/v1/technicians/{t}").json()["open_jobs"] for t in tech_ids]


def test_a_technician_setting_off_while_the_dispatcher_reassigns_keeps_capacity_consistent(api):
    orders = Counter()
    for round_ in range(ROUNDS):
        skill = f"set off {round_}"
        x, y = (api.technician(name=n, skills=[skill])["id"] for n in ("X", "Y"))
        job = api.job(product={"category": skill})["id"]
        assert _assign(api, job, x).status_code == 200
        phone = api.as_technician(x)
        went, moved = run_together(
            [lambda: send_status(api, job, "en_route", phone=phone, at=T0), lambda: _assign(api, job, y)]
        )
        assert_no_server_errors(went, moved)
        after = _job(api, job)
        if went.status_code == 200:  # the phone won: the job is on its way, nobody may take it
            orders["phone first"] += 1
            assert moved.status_code == 409 and moved.json()["code"] == "job-not-assignable", moved.text
            assert (after["status"], after["technician_id"]) == ("en_route", x)
            assert _open_jobs(api, x, y) == [1, 0]
        else:  # the dispatcher won: the job is no longer X's to report on
            orders["dispatcher first"] += 1
            assert went.status_code == 404, went.text
            assert moved.status_code == 200, moved.text
            assert (after["status"], after["technician_id"]) == ("assigned", y)
            assert _open_jobs(api, x, y) == [0, 1]
        assert_capacity_consistent(api.database)
    print("set off vs reassign:", dict(orders))


def test_a_technician_giving_up_while_the_dispatcher_reassigns_keeps_capacity_consistent(api):
    for round_ in range(ROUNDS):
        skill = f"give up {round_}"
        x, y = (api.technician(name=n, skills=[skill])["id"] for n in ("X", "Y"))
        job = api.job(product={"category": skill})["id"]
        assert _assign(api, job, x).status_code == 200
        gave_up, moved = run_together(
            [
                lambda: send_status(api, job, "unable", phone=api.as_technician(x), at=T0),
                lambda: _assign(api, job, y),
            ]
        )
        assert_no_server_errors(gave_up, moved)
        # Either order ends the same: Y has the job, X is free.
        assert moved.status_code == 200, moved.text
        assert gave_up.status_code in (200, 404), gave_up.text
        after = _job(api, job)
        assert (after["status"], after["technician_id"]) == ("assigned", y)
        assert _open_jobs(api, x, y) == [0, 1]
        assert_capacity_consistent(api.database)


def test_completing_a_job_while_the_next_is_dispatched_to_the_same_technician(api):
    orders = Counter()
    for round_ in range(ROUNDS):
        skill = f"complete {round_}"
        x = api.technician(skills=[skill], capacity=1)["id"]
        first, second = (api.job(product={"category": skill})["id"] for _ in range(2))
        phone = api.as_technician(x)
        assert api.post(f"/v1/jobs/{first}/dispatch").json()["technician_id"] == x
        tap(api, first, "en_route", "on_site", phone=phone, at=T0)
        done, sent = run_together(
            [
                lambda: send_status(api, first, "completed", phone=phone, at=T0),
                lambda: api.post(f"/v1/jobs/{second}/dispatch"),
            ]
        )
        assert_no_server_errors(done, sent)
        assert done.status_code == 200, done.text
        if sent.status_code == 200:
            orders["freed first"] += 1
            assert sent.json()["technician_id"] == x
            assert _open_jobs(api, x) == [1]
        else:
            orders["still busy"] += 1
            assert sent.json()["code"] == "no-technician-available", sent.text
            assert _job(api, second)["status"] == "new"
            assert _open_jobs(api, x) == [0]
        assert_capacity_consistent(api.database)
    print("complete vs dispatch:", dict(orders))


def test_cancelling_while_another_dispatcher_reassigns_frees_everyone(api):
    for round_ in range(ROUNDS):
        skill = f"cancel {round_}"
        x, y = (api.technician(name=n, skills=[skill])["id"] for n in ("X", "Y"))
        job = api.job(product={"category": skill})["id"]
        assert _assign(api, job, x).status_code == 200
        cancelled, moved = run_together(
            [
                lambda: send_status(api, job, "cancelled", phone=api.headers("supervisor"), at=T0),
                lambda: _assign(api, job, y),
            ]
        )
        assert_no_server_errors(cancelled, moved)
        assert cancelled.status_code == 200, cancelled.text
        assert moved.status_code in (200, 409), moved.text
        if moved.status_code == 409:
            assert moved.json()["code"] == "job-not-assignable"
        assert _job(api, job)["status"] == "cancelled"
        assert _open_jobs(api, x, y) == [0, 0]
        assert_capacity_consistent(api.database)


def test_two_dispatchers_swapping_technicians_at_once_keep_capacity_consistent(api):
    """J1 on X goes to Y while J2 on Y goes to X: each reassignment claims one technician and
    releases the other, in opposite orders. On PostgreSQL this can deadlock; the loser must get
    a clean 409 `concurrent-update` (retry), never a 500, and nothing may be half-done."""
    outcomes = Counter()
    for round_ in range(8):
        skill = f"swap {round_}"
        x, y = (api.technician(name=n, skills=[skill], capacity=2)["id"] for n in ("X", "Y"))
        j1, j2 = (api.job(product={"category": skill})["id"] for _ in range(2))
        assert _assign(api, j1, x).status_code == 200 and _assign(api, j2, y).status_code == 200
        a, b = run_together([lambda: _assign(api, j1, y), lambda: _assign(api, j2, x)])
        assert_no_server_errors(a, b)
        outcomes[(a.status_code, b.status_code)] += 1
        for r in (a, b):
            if r.status_code == 409:  # a lost deadlock is a clean "retry", never a 500
                assert r.json()["code"] == "concurrent-update", r.text
            else:
                assert r.status_code == 200, r.text
        assert_capacity_consistent(api.database)
    print("swap outcomes:", dict(outcomes))


# 5. A state machine over the whole lifecycle ----------------------------------------------


SKILLS = ("washing machine", "fridge")


def test_two_dispatchers_saving_the_same_version_at_once_one_wins_and_the_other_gets_412(api):
    """If-Match is checked under the row's write lock: of two edits made from the same read,
    exactly one lands, whatever the order, and the other is told the technician changed."""
    for round_ in range(ROUNDS):
        tech = api.technician(name=f"Edited {round_}", capacity=2)
        url = f"/v1/technicians/{tech['id']}"
        seen = {**api.headers("dispatcher"), "If-Match": api.get(url).headers["etag"]}
        a, b = run_together(
            [
                lambda: api.patch(url, {"capacity": 3}, headers=seen),
                lambda: api.patch(url, {"capacity": 5}, headers=seen),
            ]
        )
        assert_no_server_errors(a, b)
        assert sorted([a.status_code, b.status_code]) == [200, 412], (a.text, b.text)
        winner = a if a.status_code == 200 else b
        assert api.get(url).json()["capacity"] == winner.json()["capacity"]


def test_two_counts_of_the_same_shelf_at_once_one_lands_and_the_other_gets_412(api):
    api.post(
        "/v1/locations", {"code": "B1", "name": "Branch", "kind": "branch", "lat": 52.2, "lon": 21.0}, who="warehouse"
    )
    api.post(
        "/v1/parts",
        {"sku": "P1", "name": "Pump", "categories": ["washing machine"], "lead_time_hours": 24},
        who="warehouse",
    )
    url = "/v1/locations/B1/stock/P1"
    for round_ in range(ROUNDS):
        seen = {**api.headers("warehouse"), "If-Match": api.get(url, who="warehouse").headers["etag"]}
        a, b = run_together(
            [
                lambda: api.client.put(url, json={"on_hand": 2 * round_ + 1}, headers=seen),
                lambda: api.client.put(url, json={"on_hand": 2 * round_ + 2}, headers=seen),
            ]
        )
        assert_no_server_errors(a, b)
        assert sorted([a.status_code, b.status_code]) == [200, 412], (a.text, b.text)
        winner = a if a.status_code == 200 else b
        assert api.get(url, who="warehouse").json()["on_hand"] == winner.json()["on_hand"]


@pytest.fixture
def keys_looked_up_every_time(settings):
    """A deactivated technician's key is refused from the next lookup; the 5 s key cache would
    let the model's next step in before that."""
    settings.auth_cache_seconds = 0


def test_capacity_stays_consistent_through_any_sequence_of_dispatches_and_status_changes(
    keys_looked_up_every_time, api
):
    database = api.database

    class Lifecycle(RuleBasedStateMachine):
        technicians = Bundle("technicians")
        jobs = Bundle("jobs")

        def __init__(self) -> None:
            super().__init__()
            empty(database)
            api.keys.clear()
            with database.transaction() as session:
                for role in (Role.dispatcher, Role.supervisor):
                    _, api.keys[role.value] = auth.issue(session=session, role=role, now=T0)
            # The model: what the service should believe.
            self.tech: dict[int, dict[str, Any]] = {}
            self.job: dict[int, dict[str, Any]] = {}

        # Model helpers ------------------------------------------------------------------

        def open_jobs(self, tid: int) -> int:
            return sum(1 for j in self.job.values() if j["tech"] == tid and j["status"] in HOLDS_CAPACITY)

        def eligible(self, skill: str) -> set[int]:
            return {
                tid
                for tid, t in self.tech.items()
                if skill in t["skills"] and t["active"] and t["on_duty"] and self.open_jobs(tid) < t["capacity"]
            }

        # Rules ---------------------------------------------------------------------------

        def new_technician(self, capacity: int, skills: list[str], where: int) -> int:
            t = api.technician(capacity=capacity, skills=skills, lat=52.22 + 0.01 * where, lon=21.0 + 0.01 * where)
            self.tech[t["id"]] = {"capacity": capacity, "skills": set(skills), "active": True, "on_duty": True}
            return t["id"]

        @initialize(target=technicians)
        def a_first_technician(self) -> int:
            return self.new_technician(1, [SKILLS[0]], 0)

        @rule(
            target=technicians,
            capacity=st.integers(1, 3),
            skills=st.lists(st.sampled_from(SKILLS), min_size=1, max_size=2, unique=True),
            where=st.integers(0, 5),
        )
        def add_technician(self, capacity: int, skills: list[str], where: int) -> int:
            return self.new_technician(capacity, skills, where)

        @rule(target=jobs, skill=st.sampled_from(SKILLS))
        def report_a_fault(self, skill: str) -> int:
            j = api.job(product={"category": skill})
            self.job[j["id"]] = {"status": JobStatus.new, "tech": None, "skill": skill}
            return j["id"]

        @rule(job=jobs)
        def dispatch(self, job: int) -> None:
            model = self.job[job]
            r = api.post(f"/v1/jobs/{job}/dispatch")
            if model["status"] not in (JobStatus.new, JobStatus.unable):
                assert r.status_code == 409 and r.json()["code"] == "job-not-dispatchable", r.text
                return
            eligible = self.eligible(model["skill"])
            if not eligible:
                assert r.status_code == 409 and r.json()["code"] == "no-technician-available", r.text
                return
            assert r.status_code == 200, r.text
            chosen = r.json()["technician_id"]
            assert chosen in eligible
            model["status"], model["tech"] = JobStatus.assigned, chosen

        @rule(job=jobs, tech=technicians)
        def assign_by_hand(self, job: int, tech: int) -> None:
            model, t = self.job[job], self.tech[tech]
            r = api.post(f"/v1/jobs/{job}/assign", {"technician_id": tech, "reason": "customer asked"})
            if model["status"] not in REASSIGNABLE:
                expected = "job-not-assignable"
            elif model["tech"] == tech:
                expected = "already-assigned"
            elif not t["active"]:
                expected = "technician-inactive"
            elif self.open_jobs(tech) >= t["capacity"]:
                expected = "technician-at-capacity"
            else:
                assert r.status_code == 200, r.text
                model["status"], model["tech"] = JobStatus.assigned, tech
                return
            assert r.status_code == 409 and r.json()["code"] == expected, (expected, r.text)

        @rule(
            job=jobs,
            status=st.sampled_from(
                [JobStatus.en_route, JobStatus.on_site, JobStatus.completed, JobStatus.unable, JobStatus.cancelled]
            ),
            from_phone=st.booleans(),
        )
        def change_status(self, job: int, status: JobStatus, from_phone: bool) -> None:
            model = self.job[job]
            phone = from_phone and model["tech"] is not None and status is not JobStatus.cancelled
            headers = api.as_technician(model["tech"]) if phone else api.headers("dispatcher")
            r = send_status(api, job, status.value, phone=headers, at=T0)
            if phone and not self.tech[model["tech"]]["active"]:  # a deactivated technician's key is refused
                assert r.status_code == 403 and r.json()["code"] == "technician-inactive", r.text
                return
            if status not in TRANSITIONS[model["status"]]:
                assert r.status_code == 409 and r.json()["code"] == "illegal-transition", r.text
                return
            assert r.status_code == 200, r.text
            model["status"] = status
            if status is JobStatus.unable:
                model["tech"] = None

        @rule(tech=technicians, on_duty=st.booleans(), active=st.booleans())
        def technician_availability(self, tech: int, on_duty: bool, active: bool) -> None:
            r = api.patch(f"/v1/technicians/{tech}", {"on_duty": on_duty, "active": active})
            assert r.status_code == 200, r.text
            self.tech[tech].update(on_duty=on_duty, active=active)

        @precondition(lambda self: len(self.job) > 0)
        @rule(tech=technicians, job=jobs)
        def someone_elses_phone_cannot_touch_the_job(self, tech: int, job: int) -> None:
            if self.job[job]["tech"] == tech:
                return
            r = send_status(api, job, "en_route", phone=api.as_technician(tech), at=T0)
            assert r.status_code == (404 if self.tech[tech]["active"] else 403), r.text

        # After every step ----------------------------------------------------------------

        @invariant()
        def capacity_matches_the_jobs_held(self) -> None:
            assert_capacity_consistent(database)
            with database.transaction(write=False) as session:
                actual = dict(session.execute(select(Technician.id, Technician.open_jobs)).all())
                statuses = dict(session.execute(select(Job.id, Job.status)).all())
            assert actual == {tid: self.open_jobs(tid) for tid in self.tech}
            assert statuses == {jid: j["status"] for jid, j in self.job.items()}

    run_state_machine_as_test(
        Lifecycle,
        settings=hypothesis_settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


def test_a_burst_larger_than_the_worker_threads_waits_its_turn_instead_of_deadlocking(settings, database, tmp_path):
    """Admitted requests are capped below the worker threads and the connection pool (here 2
    requests, 10 threads, 6 + 8 connections), so 60 writes at once queue in the event loop.
    Without the cap (checked by hand, on PostgreSQL) every thread ends up waiting for a pool
    connection held by a request that needs a thread to commit, until the pool times out."""
    with database.transaction() as session:
        auth.ensure_admin_key(session=session, secret=ADMIN_KEY, now=datetime.now(UTC))
    env = {
        "DATABASE_URL": settings.database_url,
        "DISPATCH_ADMIN_KEY": ADMIN_KEY,
        "DISPATCH_DATA_DIR": str(tmp_path / "server-data"),
        "DISPATCH_MAX_CONCURRENT_REQUESTS": "2",
    }
    with servers.running(env=env, log_dir=tmp_path, count=1, workers=1) as (server,):
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60.0
        ) as client:
            responses = run_together(
                [lambda i=i: client.post("/v1/jobs", json=job_body(external_ref=f"BURST-{i}")) for i in range(60)]
            )
            # Health checks are never queued behind the burst.
            assert client.get("/healthz").status_code == 200
    assert_no_server_errors(*responses)
    assert Counter(r.status_code for r in responses) == {201: 60}


# 4. Stock under races: no oversell, ever ----------------------------------------------------


def add_stocked_part(database: Database, settings: Settings, *, sku: str, on_hand: int) -> None:
    """One branch holding ``on_hand`` of a new part; no central warehouse to ship from."""
    with database.transaction() as session:
        if session.scalar(select(Location.id).where(Location.code == "RACE-BR")) is None:
            stock.create_location(
                session=session,
                location_in=LocationCreate(
                    code="RACE-BR", name="Race branch", kind="branch", lat=CUSTOMER[0], lon=CUSTOMER[1]
                ),
                settings=settings,
                now=T0,
            )
        stock.create_part(session=session, part_in=PartCreate(sku=sku, name=sku, lead_time_hours=48), now=T0)
        parts.set_stock(
            session=session,
            code="RACE-BR",
            sku=sku,
            on_hand=on_hand,
            note=None,
            caller=SYSTEM,
            now=T0,
            settings=settings,
        )


def _part_states(database: Database, job_ids: list[int]) -> Counter[str]:
    with database.transaction(write=False) as session:
        return Counter(
            state.value for state in session.scalars(select(JobPart.state).where(JobPart.job_id.in_(job_ids)))
        )


def test_fifty_phones_asking_for_the_last_ten_parts_get_ten_reservations_and_forty_backorders(api, settings):
    """In one app (SQLite serialises writers, PostgreSQL row locks): 50 requests at once."""
    add_stocked_part(api.database, settings, sku="RACE-1", on_hand=10)
    job_ids = add_jobs(api.database, 50, skill="washing machine", settings=settings)
    responses = run_together(
        [lambda j=j: api.post(f"/v1/jobs/{j}/parts", {"sku": "RACE-1", "quantity": 1}) for j in job_ids]
    )
    assert_no_server_errors(*responses)
    assert Counter(r.status_code for r in responses) == {201: 50}, [
        r.text[:200] for r in responses if r.status_code != 201
    ][:3]
    assert Counter(r.json()["state"] for r in responses) == {"reserved": 10, "backordered": 40}
    assert _part_states(api.database, job_ids) == {"reserved": 10, "backordered": 40}
    problems = stock_problems(api.database)
    assert not problems, problems


@pytest.mark.postgres_only
def test_racing_part_requests_across_app_processes_never_oversell(settings, database, app_servers):
    """50 POST /parts for a part with 10 in stock, over two servers (four worker processes) with
    receipts landing in the middle: every piece goes to exactly one job, and nothing is a 5xx."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    clients = [httpx.Client(base_url=s.base_url, headers=headers, timeout=30.0) for s in app_servers]
    try:
        now = datetime.now(UTC)
        add_stocked_part(database, settings, sku="RACE-HTTP", on_hand=10)
        job_ids = add_jobs(database, 50, skill="washing machine", settings=settings, now=now)
        responses = run_together(
            [
                lambda j=j, c=clients[i % len(clients)]: c.post(
                    f"/v1/jobs/{j}/parts", json={"sku": "RACE-HTTP", "quantity": 1}
                )
                for i, j in enumerate(job_ids)
            ]
        )
        assert_no_server_errors(*responses)
        assert Counter(r.status_code for r in responses) == {201: 50}, [
            r.text[:300] for r in responses if r.status_code != 201
        ][:3]
        assert _part_states(database, job_ids) == {"reserved": 10, "backordered": 40}

        # Goods arrive in five receipts at once while the phones ask for 10 more parts.
        more_jobs = add_jobs(database, 10, skill="washing machine", settings=settings, now=now)
        calls = [
            lambda c=clients[i % 2]: c.post("/v1/locations/RACE-BR/receipts", json={"sku": "RACE-HTTP", "quantity": 6})
            for i in range(5)
        ] + [
            lambda j=j, c=clients[i % 2]: c.post(f"/v1/jobs/{j}/parts", json={"sku": "RACE-HTTP", "quantity": 1})
            for i, j in enumerate(more_jobs)
        ]
        responses = run_together(calls)
        assert_no_server_errors(*responses)
        assert all(r.status_code == 201 for r in responses), [r.text[:300] for r in responses if r.status_code != 201][
            :3
        ]
        # 10 + 30 received = 40 pieces for 60 requests: 40 reserved, 20 still on backorder.
        assert _part_states(database, job_ids + more_jobs) == {"reserved": 40, "backordered": 20}
        problems = stock_problems(database)
        assert not problems, problems
    finally:
        for client in clients:
            client.close()
    for server in app_servers:
        assert "Traceback" not in server.log_tail(100_000), server.log_tail()
