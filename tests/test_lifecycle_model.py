"""The whole job lifecycle as a state machine (docs/testing.md, "The lifecycle model"), driven over HTTP.

One branch holds a part in short supply; two or three technicians work from it. Hypothesis
reports faults (standard and express), dispatches and assigns them, taps the technicians'
phones, cancels, asks for parts, receives goods, counts the shelf, sends technicians back on
return visits and moves the clock forward with an SLA watcher pass. After every step:

- no response was a 5xx;
- every job is in the status the lifecycle allows it to reach from the last one, and names a
  technician exactly when that status holds one; capacity adds up (``support.invariants``);
- stock: ``0 <= reserved <= on_hand``, the ledger sums to every stock row, job lines account
  for every reservation, and a job waits for parts exactly when it has a line still to come;
- SLA: at most one ``sla_breached`` per job and deadline; a cancelled or finished job has no
  checkpoint left to fire, hears nothing from the watcher after it ended, and keeps its breach if
  it ended after its deadline, whether or not the watcher had passed; right after each
  watcher pass nothing due is left unfired and every open job past a deadline it has not met
  has exactly one breach (no breach lost);
- a return visit keeps the first deadline and re-arms the completion checkpoints the fix made
  moot: those ahead at their own time, of those passed only the highest, at once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from support.api import job_body
from support.database import empty
from support.invariants import assert_capacity_consistent, stock_problems
from support.moments import T0

from dispatch.auth import service as auth
from dispatch.auth.models import Role
from dispatch.config import Settings
from dispatch.events.models import JobEvent
from dispatch.jobs.lifecycle import (
    DISPATCHABLE,
    FINISHED,
    HOLDS_CAPACITY,
    OPEN,
    REASSIGNABLE,
    TRANSITIONS,
    WAITS_FOR_PARTS_FROM,
    JobStatus,
)
from dispatch.jobs.models import Job
from dispatch.parts.models import WAITING, JobPart, JobPartState, Stock
from dispatch.sla import watcher
from dispatch.sla.models import Deadline, SlaCheckpoint
from dispatch.technicians.models import Technician

SKILL = "washing machine"
BRANCH = {"code": "MODEL-BR", "name": "Model branch", "kind": "branch", "lat": 52.2330, "lon": 21.0080}
PART = {"sku": "MODEL-PUMP", "name": "Drain pump", "categories": [SKILL], "lead_time_hours": 48}
STOCK = f"/v1/locations/{BRANCH['code']}/stock/{PART['sku']}"
TAPS = [JobStatus.en_route, JobStatus.on_site, JobStatus.completed, JobStatus.unable]
# The taps that get a job done; mostly drawn, so that jobs do get done (and come back).
FORWARD = {
    JobStatus.assigned: [JobStatus.en_route, JobStatus.on_site],
    JobStatus.en_route: [JobStatus.on_site],
    JobStatus.on_site: [JobStatus.completed],
}
# Nobody has the job in these; in these somebody must.
NOBODY = frozenset({JobStatus.new, JobStatus.unable, JobStatus.ready})
SOMEBODY = HOLDS_CAPACITY | {JobStatus.completed}
USUALLY = st.sampled_from([True, True, True, False])


def test_the_job_lifecycle_keeps_every_invariant_through_any_sequence_of_steps(api):
    database = api.database

    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            empty(database)
            api.clock.set(T0)
            api.keys.clear()
            with database.transaction() as session:
                for role in (Role.dispatcher, Role.warehouse):
                    _, api.keys[role.value] = auth.issue(session=session, role=role, now=T0)
            self.responses: list[tuple[str, str, int]] = []
            self.capacity: dict[int, int] = {}  # technician id -> capacity
            # The model: each job's status and technician, as the lifecycle says they must be.
            self.status: dict[int, JobStatus] = {}
            self.tech_of: dict[int, int | None] = {}

        # Helpers --------------------------------------------------------------------------

        def call(self, method: str, path: str, who: str | None = "dispatcher", **kw: Any):  # type: ignore[no-untyped-def]
            headers = kw.pop("headers", None) or api.headers(who)  # type: ignore[arg-type]
            r = api.client.request(method, path, headers=headers, **kw)
            self.responses.append((method, path, r.status_code))
            assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text}"
            return r

        def tap(self, job: int, to: JobStatus, headers: dict[str, str]):  # type: ignore[no-untyped-def]
            return self.call(
                "POST",
                f"/v1/jobs/{job}/status",
                headers=headers,
                json={"status": to.value, "at": api.clock.now().isoformat()},
            )

        def room(self, tid: int) -> int:
            held = sum(1 for j, s in self.status.items() if s in HOLDS_CAPACITY and self.tech_of[j] == tid)
            return self.capacity[tid] - held

        def with_room(self) -> set[int]:
            return {tid for tid in self.capacity if self.room(tid) > 0}

        def level(self) -> tuple[int, int]:
            with database.transaction(write=False) as session:
                row = session.execute(select(Stock.on_hand, Stock.reserved)).one_or_none()
            return (row.on_hand, row.reserved) if row else (0, 0)

        def backordered(self) -> int:
            with database.transaction(write=False) as session:
                return len(session.scalars(select(JobPart.id).where(JobPart.state == JobPartState.backordered)).all())

        def jobs_now(self) -> dict[int, tuple[JobStatus, int | None]]:
            with database.transaction(write=False) as session:
                return {
                    row.id: (row.status, row.technician_id)
                    for row in session.execute(select(Job.id, Job.status, Job.technician_id))
                }

        def sync_side_effects(self, target: int | None = None) -> None:
            """Stock freed or received goes to waiting jobs: each goes back out (assigned) or is
            ready for a dispatcher. No other job may change as a side effect."""
            actual = self.jobs_now()
            went_ready = False
            for jid, (status, tech) in actual.items():
                if jid == target or (status, tech) == (self.status[jid], self.tech_of[jid]):
                    continue
                assert self.status[jid] is JobStatus.waiting_parts, (jid, self.status[jid], status)
                assert status in (JobStatus.assigned, JobStatus.ready), (jid, status)
                went_ready |= status is JobStatus.ready
                self.status[jid], self.tech_of[jid] = status, tech
            if went_ready:  # sent back in id order, nobody is freed meanwhile: nobody had room
                assert not self.with_room(), "a job was left ready while a technician had room"

        # Setup ------------------------------------------------------------------------------

        @initialize(
            capacities=st.lists(st.integers(1, 2), min_size=2, max_size=3),
            on_hand=st.integers(0, 2),
            tiers=st.lists(st.sampled_from(["standard", "express"]), min_size=1, max_size=3),
        )
        def a_branch_with_a_part_technicians_and_faults(
            self, capacities: list[int], on_hand: int, tiers: list[str]
        ) -> None:
            assert self.call("POST", "/v1/locations", who="warehouse", json=BRANCH).status_code == 201
            assert self.call("POST", "/v1/parts", who="warehouse", json=PART).status_code == 201
            r = self.call("PUT", STOCK, who="warehouse", json={"on_hand": on_hand, "note": "opening count"})
            assert r.status_code == 200, r.text
            for i, capacity in enumerate(capacities):
                tech = api.technician(
                    name=f"Tech {i}",
                    capacity=capacity,
                    skills=[SKILL],
                    home_branch=BRANCH["code"],
                    lat=52.2300 + 0.002 * i,
                    lon=21.0100 - 0.002 * i,
                )
                self.capacity[tech["id"]] = capacity
            for tier in tiers:
                self.report_a_fault(tier)

        # Rules ------------------------------------------------------------------------------
        # Each rule mostly picks a job it fits (so whole workflows happen in a few steps) and
        # sometimes any job (so refusals are checked too).

        def job_for(self, data: st.DataObject, fits: frozenset[JobStatus]) -> int:
            fitting = sorted(j for j, s in self.status.items() if s in fits)
            if fitting and data.draw(USUALLY, label="a job this fits?"):
                return data.draw(st.sampled_from(fitting), label="job")
            return data.draw(st.sampled_from(sorted(self.status)), label="job")

        @rule(tier=st.sampled_from(["standard", "express"]))
        def a_fault_is_reported(self, tier: str) -> None:
            self.report_a_fault(tier)

        def report_a_fault(self, tier: str) -> None:
            r = self.call("POST", "/v1/jobs", json=job_body(service_tier=tier))
            assert r.status_code == 201, r.text
            jid = r.json()["id"]
            self.status[jid], self.tech_of[jid] = JobStatus.new, None

        @precondition(lambda self: self.status)
        @rule(data=st.data())
        def a_dispatcher_acts(self, data: st.DataObject) -> None:
            # Cancelling is one action in four: more, and jobs rarely live to be done.
            action = data.draw(st.sampled_from(["dispatch", "assign", "dispatch", "cancel"]), label="action")
            if action == "assign":
                tech = data.draw(st.sampled_from(sorted(self.capacity)), label="technician")
                self.assign_by_hand(self.job_for(data, REASSIGNABLE), tech)
            elif action == "dispatch":
                self.dispatch(self.job_for(data, DISPATCHABLE))
            else:
                self.cancel(self.job_for(data, OPEN))

        def dispatch(self, job: int) -> None:
            r = self.call("POST", f"/v1/jobs/{job}/dispatch")
            if self.status[job] not in DISPATCHABLE:
                assert r.status_code == 409 and r.json()["code"] == "job-not-dispatchable", r.text
                return
            free = self.with_room()
            if not free:
                assert r.status_code == 409 and r.json()["code"] == "no-technician-available", r.text
                return
            assert r.status_code == 200, r.text
            assert r.json()["technician_id"] in free
            self.status[job], self.tech_of[job] = JobStatus.assigned, r.json()["technician_id"]

        def assign_by_hand(self, job: int, tech: int) -> None:
            r = self.call(
                "POST", f"/v1/jobs/{job}/assign", json={"technician_id": tech, "reason": "knows the customer"}
            )
            if self.status[job] not in REASSIGNABLE:
                expected = "job-not-assignable"
            elif self.tech_of[job] == tech:
                expected = "already-assigned"
            elif self.room(tech) <= 0:
                expected = "technician-at-capacity"
            else:
                assert r.status_code == 200, r.text
                self.status[job], self.tech_of[job] = JobStatus.assigned, tech
                return
            assert r.status_code == 409 and r.json()["code"] == expected, (expected, r.text)

        @precondition(lambda self: any(t is not None for t in self.tech_of.values()))
        @rule(data=st.data())
        def phone_tap(self, data: st.DataObject) -> None:
            job = self.job_for(data, HOLDS_CAPACITY)
            forward = FORWARD.get(self.status[job])
            to = data.draw(
                st.sampled_from(forward if forward and data.draw(USUALLY, label="forward?") else TAPS), label="tap"
            )
            tech = self.tech_of[job]
            if tech is None:  # nobody has the job: no phone sees it
                r = self.tap(job, to, api.as_technician(min(self.capacity)))
                assert r.status_code == 404, r.text
                return
            r = self.tap(job, to, api.as_technician(tech))
            if to not in TRANSITIONS[self.status[job]]:
                assert r.status_code == 409 and r.json()["code"] == "illegal-transition", r.text
                return
            assert r.status_code == 200, r.text
            self.status[job] = to
            if to is JobStatus.unable:
                self.tech_of[job] = None

        def cancel(self, job: int) -> None:
            r = self.tap(job, JobStatus.cancelled, api.headers("dispatcher"))
            if JobStatus.cancelled not in TRANSITIONS[self.status[job]]:
                assert r.status_code == 409 and r.json()["code"] == "illegal-transition", r.text
                return
            assert r.status_code == 200, r.text
            self.status[job] = JobStatus.cancelled
            self.sync_side_effects(target=job)  # its reserved parts go to other jobs' backorders

        @precondition(lambda self: any(s in OPEN for s in self.status.values()))
        @rule(data=st.data())
        def ask_for_a_part(self, data: st.DataObject) -> None:
            job = self.job_for(data, HOLDS_CAPACITY)  # mostly the technician at the job asks
            quantity = data.draw(st.integers(1, 2), label="quantity")
            on_hand, reserved = self.level()
            r = self.call("POST", f"/v1/jobs/{job}/parts", json={"sku": PART["sku"], "quantity": quantity})
            if self.status[job] not in OPEN:
                assert r.status_code == 409 and r.json()["code"] == "job-closed", r.text
                return
            assert r.status_code == 201, r.text
            expected = "reserved" if on_hand - reserved >= quantity else "backordered"
            assert r.json()["state"] == expected, (on_hand, reserved, quantity, r.text)
            if expected == "backordered" and self.status[job] in WAITS_FOR_PARTS_FROM:
                self.status[job] = JobStatus.waiting_parts  # the technician stays on the job

        @rule(data=st.data())
        def the_warehouse_receives_goods_or_counts_the_shelf(self, data: st.DataObject) -> None:
            receipt = data.draw(st.booleans(), label="a receipt?")
            quantity = data.draw(st.integers(0, 4), label="quantity")
            on_hand, reserved = self.level()
            if receipt:
                r = self.call(
                    "POST",
                    f"/v1/locations/{BRANCH['code']}/receipts",
                    who="warehouse",
                    json={"sku": PART["sku"], "quantity": quantity or 1},
                )
                assert r.status_code == 201, r.text
            else:
                r = self.call("PUT", STOCK, who="warehouse", json={"on_hand": quantity, "note": "shelf count"})
                if quantity < reserved:
                    assert r.status_code == 409 and r.json()["code"] == "below-reserved", r.text
                    return
                assert r.status_code == 200, r.text
            self.sync_side_effects()
            if receipt or quantity > on_hand:  # new stock goes to the backorders first
                now_on_hand, now_reserved = self.level()
                assert not self.backordered() or now_on_hand == now_reserved, "a backorder waits beside free stock"

        @precondition(lambda self: any(s in FINISHED for s in self.status.values()))
        @rule(data=st.data())
        def return_visit(self, data: st.DataObject) -> None:
            job = self.job_for(data, FINISHED)
            reason = data.draw(st.sampled_from(["callback_not_fixed", "fault_returned"]), label="reason")
            # The customer calls back at once or a while later: later, some checkpoints have passed.
            later = data.draw(st.sampled_from([0, 12, 24, 36]), label="hours later")
            if later:
                self.time_passes(later)
            now = api.clock.now()
            with database.transaction(write=False) as session:
                due_before = session.scalar(select(Job.due_at).where(Job.id == job))
                moot = session.execute(
                    select(SlaCheckpoint.id, SlaCheckpoint.fires_at)
                    .where(
                        SlaCheckpoint.job_id == job,
                        SlaCheckpoint.deadline == Deadline.completion.value,
                        SlaCheckpoint.fired_at.is_(None),
                        SlaCheckpoint.resolved_at.is_not(None),
                    )
                    .order_by(SlaCheckpoint.fires_at, SlaCheckpoint.id)
                ).all()
            previous, free = self.tech_of[job], self.with_room()
            r = self.call("POST", f"/v1/jobs/{job}/return-visits", json={"reason": reason})
            if self.status[job] not in FINISHED:
                assert r.status_code == 409 and r.json()["code"] == "not-returnable", r.text
                return
            assert r.status_code == 201, r.text
            body = r.json()["job"]
            # The last technician goes back if they can, else anyone with room, else it is ready.
            if previous in free:
                assert (body["status"], body["technician_id"]) == ("assigned", previous), body
            elif free:
                assert body["status"] == "assigned" and body["technician_id"] in free, body
            else:
                assert (body["status"], body["technician_id"]) == ("ready", None), body
            self.status[job], self.tech_of[job] = JobStatus(body["status"]), body["technician_id"]
            # The first deadline stays; the checkpoints the fix made moot race again.
            passed = [c.id for c in moot if c.fires_at <= now]
            with database.transaction(write=False) as session:
                assert session.scalar(select(Job.due_at).where(Job.id == job)) == due_before
                after = {
                    c.id: c
                    for c in session.scalars(select(SlaCheckpoint).where(SlaCheckpoint.id.in_([c.id for c in moot])))
                }
            for c in moot:
                armed = after[c.id].resolved_at is None and after[c.id].fired_at is None
                if c.fires_at > now:
                    assert armed and after[c.id].fires_at == c.fires_at, "a checkpoint still ahead was not re-armed"
                elif c.id == passed[-1]:
                    assert armed and after[c.id].fires_at == now, "the highest passed checkpoint does not fire now"
                else:
                    assert not armed, "a passed checkpoint below the highest would fire back-dated"

        @rule(hours=st.integers(1, 12))
        def time_passes_and_the_watcher_runs(self, hours: int) -> None:
            self.time_passes(hours)

        def time_passes(self, hours: int) -> None:
            now = api.clock.advance(hours=hours)
            watcher.run_pass(database, api.clock.now, Settings())
            with database.transaction(write=False) as session:
                overdue = session.execute(
                    select(SlaCheckpoint.id, SlaCheckpoint.job_id, SlaCheckpoint.deadline, SlaCheckpoint.level).where(
                        SlaCheckpoint.fires_at <= now,
                        SlaCheckpoint.fired_at.is_(None),
                        SlaCheckpoint.resolved_at.is_(None),
                    )
                ).all()
                open_jobs = session.scalars(select(Job).where(Job.status.in_([s.value for s in OPEN]))).all()
                breaches = self.breaches(session)
            assert not overdue, f"checkpoints due but not fired after a watcher pass: {overdue}"
            for job in open_jobs:  # no breach lost
                if job.due_at <= now:
                    assert breaches[(job.id, "completion")] == 1, (job.id, job.status, "completion breach lost")
                if job.arrival_due_at is not None and job.arrived_at is None and job.arrival_due_at <= now:
                    assert breaches[(job.id, "arrival")] == 1, (job.id, job.status, "arrival breach lost")

        @staticmethod
        def breaches(session: Any) -> Counter[tuple[int, str]]:
            return Counter(
                (job_id, data["deadline"])
                for job_id, data in session.execute(
                    select(JobEvent.job_id, JobEvent.data).where(JobEvent.type == "sla_breached")
                )
            )

        # After every step -------------------------------------------------------------------

        @invariant()
        def no_server_errors(self) -> None:
            assert all(code < 500 for _, _, code in self.responses), [r for r in self.responses if r[2] >= 500]

        @invariant()
        def jobs_are_where_the_lifecycle_put_them(self) -> None:
            actual = self.jobs_now()
            assert actual == {j: (self.status[j], self.tech_of[j]) for j in self.status}
            for jid, (status, tech) in actual.items():
                if status in SOMEBODY:
                    assert tech is not None, (jid, status)
                elif status in NOBODY:
                    assert tech is None, (jid, status, tech)
            assert_capacity_consistent(database)
            with database.transaction(write=False) as session:
                open_jobs = dict(session.execute(select(Technician.id, Technician.open_jobs)).all())
            assert open_jobs == {tid: self.capacity[tid] - self.room(tid) for tid in self.capacity}

        @invariant()
        def stock_adds_up_and_jobs_wait_exactly_for_parts_to_come(self) -> None:
            problems = stock_problems(database)
            assert not problems, problems
            with database.transaction(write=False) as session:
                lines = session.execute(select(JobPart.job_id, JobPart.state)).all()
            waiting = {job_id for job_id, state in lines if state in WAITING}
            holding = {job_id for job_id, state in lines if state is JobPartState.reserved}
            for jid, status in self.status.items():
                if status in OPEN:
                    assert (status is JobStatus.waiting_parts) == (jid in waiting), (jid, status)
                else:  # used or given back: nothing is held or on order for a job that ended
                    assert jid not in waiting and jid not in holding, (jid, status)

        @invariant()
        def sla_records_are_never_doubled_and_end_with_the_job(self) -> None:
            with database.transaction(write=False) as session:
                breaches = self.breaches(session)
                ended = {
                    row.id: row
                    for row in session.execute(
                        select(Job.id, Job.status, Job.cancelled_at, Job.completed_at, Job.due_at).where(
                            Job.status.not_in([s.value for s in OPEN])
                        )
                    )
                }
                pending = set(
                    session.scalars(
                        select(SlaCheckpoint.job_id).where(
                            SlaCheckpoint.fired_at.is_(None), SlaCheckpoint.resolved_at.is_(None)
                        )
                    )
                )
                sla_events = session.execute(
                    select(JobEvent.job_id, JobEvent.recorded_at).where(JobEvent.type.like("sla\\_%", escape="\\"))
                ).all()
            assert all(n == 1 for n in breaches.values()), {k: n for k, n in breaches.items() if n > 1}
            assert not pending & set(ended), f"ended jobs with checkpoints still to fire: {pending & set(ended)}"
            for job_id, recorded_at in sla_events:
                job = ended.get(job_id)
                if job is not None:  # the last fix or the cancellation ended the race
                    assert recorded_at <= (job.cancelled_at or job.completed_at), (
                        f"job {job_id} heard from the watcher after it ended"
                    )
            for job_id, job in ended.items():  # ended late: its breach is kept, however late the watcher
                if (job.cancelled_at or job.completed_at) > job.due_at:
                    assert breaches[(job_id, "completion")] == 1, (job_id, job.status, "breach lost at the end")

    run_state_machine_as_test(
        Lifecycle,
        settings=hypothesis_settings(
            max_examples=20,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
