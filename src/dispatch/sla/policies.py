"""SLA policies: which promise a job is held to, and the deadlines and checkpoints it gives.

A job gets its policy when it arrives (emergency priority, else its service tier) and its
deadlines are computed then and stored with it: an admin who edits a policy changes the promise
for the jobs that come after, never retroactively.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dispatch.auth.service import SYSTEM
from dispatch.errors import NotFound, Unprocessable
from dispatch.jobs.models import Job, Priority, ServiceTier
from dispatch.sla.calendar import BusinessHours, add_working_time, working_time_between
from dispatch.sla.models import (
    Audience,
    Deadline,
    Level,
    PolicyName,
    SlaCheckpoint,
    SlaPolicy,
)

# Why the clock may stop. Waiting for parts is not one of them by default: the promise is to
# the customer, and a part that is late is the service centre's problem, not theirs.
PAUSE_REASONS = ("customer_requested_later", "customer_unreachable")

# What a fresh database holds (the migration seeds the same).
DEFAULTS: dict[PolicyName, dict[str, Any]] = {
    PolicyName.standard: {
        "arrival_hours": None,
        "completion_hours": 24.0,
        "at_risk_ratio": 0.75,
        "warnings": [{"ratio": 0.5, "notify": "technician"}],
        "business_hours": None,
        "pause_reasons": list(PAUSE_REASONS),
    },
    PolicyName.express: {
        "arrival_hours": 2.0,
        "completion_hours": 24.0,
        "at_risk_ratio": 0.75,
        "warnings": [{"ratio": 0.5, "notify": "technician"}],
        "business_hours": None,
        "pause_reasons": list(PAUSE_REASONS),
    },
    # Safety first: nobody may stop the clock on a gas leak.
    PolicyName.emergency: {
        "arrival_hours": 2.0,
        "completion_hours": 24.0,
        "at_risk_ratio": 0.5,
        "warnings": [],
        "business_hours": None,
        "pause_reasons": [],
    },
}

# At risk goes to the dispatcher, a breach to the supervisor (their escalation queue).
AT_RISK_AUDIENCE = Audience.dispatcher
BREACH_AUDIENCE = Audience.supervisor


def policy_name_for(priority: Priority, tier: ServiceTier) -> PolicyName:
    if priority is Priority.emergency:
        return PolicyName.emergency
    if tier is ServiceTier.express:
        return PolicyName.express
    return PolicyName.standard


def get(session: Session, name: PolicyName | str) -> SlaPolicy:
    policy = session.get(SlaPolicy, PolicyName(name))
    if policy is None:  # only if someone deleted the seeded row by hand
        raise NotFound(f"SLA policy {name} not found", code="sla-policy-not-found")
    return policy


def all_policies(session: Session) -> list[SlaPolicy]:
    return list(session.scalars(select(SlaPolicy).order_by(SlaPolicy.name)))


def calendar(policy: SlaPolicy) -> BusinessHours | None:
    spec = policy.business_hours
    if not spec:
        return None
    return BusinessHours(
        timezone=spec["timezone"],
        days=spec["days"],
        opens=time.fromisoformat(spec["opens"]),
        closes=time.fromisoformat(spec["closes"]),
        breaks=tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in spec.get("breaks", [])),
        holidays=frozenset(date.fromisoformat(d) for d in spec.get("holidays", [])),
    )


def after(start: datetime, hours: float, hours_of: BusinessHours | None) -> datetime:
    """``hours`` of counted time after ``start``: wall-clock, or working time on a calendar."""
    amount = timedelta(hours=hours)
    return start + amount if hours_of is None else add_working_time(start, amount, hours_of)


def counted(start: datetime, end: datetime, hours_of: BusinessHours | None) -> timedelta:
    """How much counted time lies between two instants."""
    if end <= start:
        return timedelta()
    return end - start if hours_of is None else working_time_between(start, end, hours_of)


@dataclass(frozen=True)
class Plan:
    """A new job's deadlines and the checkpoints the watcher will fire."""

    policy: PolicyName
    due_at: datetime
    at_risk_at: datetime
    arrival_due_at: datetime | None
    arrival_at_risk_at: datetime | None
    checkpoints: list[dict[str, Any]]


def plan(policy: SlaPolicy, *, reported_at: datetime, appointment_end: datetime | None) -> Plan:
    hours_of = calendar(policy)
    checkpoints: list[dict[str, Any]] = []

    def deadline(kind: Deadline, hours: float) -> tuple[datetime, datetime]:
        due = after(reported_at, hours, hours_of)
        at_risk = after(reported_at, hours * policy.at_risk_ratio, hours_of)
        for warning in policy.warnings:
            checkpoints.append(
                {
                    "deadline": kind,
                    "level": Level.warning,
                    "ratio": warning["ratio"],
                    "audience": Audience(warning["notify"]),
                    "fires_at": after(reported_at, hours * warning["ratio"], hours_of),
                }
            )
        checkpoints.append(
            {
                "deadline": kind,
                "level": Level.at_risk,
                "ratio": policy.at_risk_ratio,
                "audience": AT_RISK_AUDIENCE,
                "fires_at": at_risk,
            }
        )
        checkpoints.append(
            {"deadline": kind, "level": Level.breached, "ratio": 1.0, "audience": BREACH_AUDIENCE, "fires_at": due}
        )
        return due, at_risk

    arrival = deadline(Deadline.arrival, policy.arrival_hours) if policy.arrival_hours else (None, None)
    due_at, at_risk_at = deadline(Deadline.completion, policy.completion_hours)
    if appointment_end is not None:
        # The window the customer was promised: if it ends with nobody there, a dispatcher hears.
        checkpoints.append(
            {
                "deadline": Deadline.appointment,
                "level": Level.no_show,
                "ratio": None,
                "audience": AT_RISK_AUDIENCE,
                "fires_at": appointment_end,
            }
        )
    return Plan(PolicyName(policy.name), due_at, at_risk_at, arrival[0], arrival[1], checkpoints)


def apply(job: Job, plan_: Plan) -> None:
    job.sla_policy = plan_.policy.value
    job.due_at, job.at_risk_at = plan_.due_at, plan_.at_risk_at
    job.arrival_due_at, job.arrival_at_risk_at = plan_.arrival_due_at, plan_.arrival_at_risk_at
    job.urgency = 0 if plan_.policy is PolicyName.emergency else 1
    set_next(job)


def set_next(job: Job) -> None:
    """The next deadline the job races: arrival until someone is on site, then completion."""
    if job.arrival_due_at is not None and job.arrived_at is None:
        job.next_due_at, job.next_at_risk_at = job.arrival_due_at, job.arrival_at_risk_at
    else:
        job.next_due_at, job.next_at_risk_at = job.due_at, job.at_risk_at


def checkpoint_rows(job_id: int, plan_: Plan) -> list[dict[str, Any]]:
    return [{"job_id": job_id, **c} for c in plan_.checkpoints]


def update(session: Session, name: PolicyName, changes: dict[str, Any], *, actor: str, now: datetime) -> SlaPolicy:
    """Replace a policy's targets with ``changes`` (an ``SlaPolicyUpdate`` as JSON values)."""
    policy = get(session, name)
    if "warnings" in changes:  # kept in the order they fire
        changes = {**changes, "warnings": sorted(changes["warnings"], key=lambda w: w["ratio"])}
    merged = {
        "arrival_hours": policy.arrival_hours,
        "completion_hours": policy.completion_hours,
        "at_risk_ratio": policy.at_risk_ratio,
        **changes,
    }
    for warning in merged.get("warnings", policy.warnings):
        if not 0 < warning["ratio"] < 1:
            raise Unprocessable(
                "a warning's ratio is a share of the allowed time, between 0 and 1", code="invalid-policy"
            )
    if merged["arrival_hours"] is not None and merged["arrival_hours"] > merged["completion_hours"]:
        raise Unprocessable("the arrival target cannot be later than the completion target", code="invalid-policy")
    for key, value in changes.items():
        setattr(policy, key, value)
    if policy.business_hours:
        # Every deadline of a new job must be reachable on the calendar, or intake would fail
        # for every job of this policy (one working minute a week cannot hold 720 hours).
        try:
            plan(policy, reported_at=now, appointment_end=None)
        except ValueError as exc:
            raise Unprocessable(f"the targets do not fit this calendar: {exc}", code="invalid-policy") from exc
    policy.updated_at, policy.updated_by = now, actor
    session.flush()
    return policy


def pending_checkpoints(session: Session, job_id: int) -> list[SlaCheckpoint]:
    return list(
        session.scalars(
            select(SlaCheckpoint).where(
                SlaCheckpoint.job_id == job_id, SlaCheckpoint.fired_at.is_(None), SlaCheckpoint.resolved_at.is_(None)
            )
        )
    )


def restore_defaults(session: Session, now: datetime) -> None:
    """Put the brief's default policies back (a database emptied by hand, or a test's)."""
    session.execute(delete(SlaPolicy))
    session.add_all(
        SlaPolicy(name=name, updated_at=now, updated_by=SYSTEM.actor, **values)  # type: ignore[arg-type]
        for name, values in DEFAULTS.items()
    )
    session.flush()
