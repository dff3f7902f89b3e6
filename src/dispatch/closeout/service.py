"""Closing a job: sign-off, callbacks, compliance reviews, and the rule that closes.

A completed job **closes by itself** the moment its last condition is met (see
docs/decisions.md): the customer's callback says fixed, and the latest visit passes compliance
(a sign-off, its photo present and not a `mismatch` unless a supervisor accepted it, no failed
review). ``closing`` says what is still missing, for the console and for ``GET .../closeout``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from dispatch.auth.service import SYSTEM, Caller
from dispatch.closeout.models import ComplianceReview, JobCallback, SignOff
from dispatch.config import Settings
from dispatch.errors import Conflict, Unprocessable
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.jobs import service as jobs
from dispatch.jobs.lifecycle import JobStatus
from dispatch.jobs.models import Job
from dispatch.photos.models import Photo, PhotoVerdict
from dispatch.visits import service as visits
from dispatch.visits.models import Visit, VisitOutcome

SIGNABLE = (JobStatus.on_site, JobStatus.completed)


def _field(name: str, msg: str) -> dict[str, object]:
    return {"loc": ["body", name], "msg": msg, "type": "value_error"}


# --- what closing needs ----------------------------------------------------------------------


@dataclass
class Closing:
    """Where a job stands on the way to closed. ``missing`` uses stable codes:
    ``job-not-completed``, ``signoff``, ``photo-mismatch``, ``compliance-review-failed``,
    ``callback``, ``callback-not-fixed``."""

    visit: Visit | None
    signoff: SignOff | None = None
    photo: Photo | None = None
    review: ComplianceReview | None = None
    callback: JobCallback | None = None  # the last one that reached the customer
    unreached_attempts: int = 0
    retry_after: datetime | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def compliant(self) -> bool:
        """The work is completed and its proof passes: signed off, the photo not a mismatch
        (or accepted by a supervisor), no failed review."""
        return not {"job-not-completed", "signoff", "photo-mismatch", "compliance-review-failed"} & set(self.missing)


def _completed_visit(session: Session, job: Job) -> Visit | None:
    visit = visits.latest(session, job.id)  # type: ignore[arg-type]
    return visit if visit is not None and visit.outcome is VisitOutcome.fixed else None


def closing(session: Session, job: Job) -> Closing:
    if job.status not in (JobStatus.completed, JobStatus.closed):
        return Closing(visit=visits.latest(session, job.id), missing=["job-not-completed"])  # type: ignore[arg-type]
    visit = _completed_visit(session, job)
    state = Closing(visit=visit)
    if visit is None:  # completed before visits were recorded
        state.missing = ["signoff", "callback"]
        return state
    state.signoff = session.scalar(select(SignOff).where(SignOff.visit_id == visit.id))
    state.photo = session.get(Photo, state.signoff.photo_id) if state.signoff else None
    state.review = session.scalar(
        select(ComplianceReview)
        .where(ComplianceReview.visit_id == visit.id)
        .order_by(ComplianceReview.id.desc())
        .limit(1)
    )
    calls = list(session.scalars(select(JobCallback).where(JobCallback.visit_id == visit.id).order_by(JobCallback.id)))
    reached = [c for c in calls if c.reached]
    state.callback = reached[-1] if reached else None
    state.unreached_attempts = sum(1 for c in calls if not c.reached)
    if calls and not calls[-1].reached:
        state.retry_after = calls[-1].retry_after
    if state.signoff is None:
        state.missing.append("signoff")
    elif (
        state.photo is not None
        and state.photo.verdict is PhotoVerdict.mismatch
        and not (state.review is not None and state.review.passed)
    ):
        state.missing.append("photo-mismatch")
    if state.review is not None and not state.review.passed:
        state.missing.append("compliance-review-failed")
    if state.callback is None:
        state.missing.append("callback")
    elif not state.callback.fixed:
        state.missing.append("callback-not-fixed")
    return state


def close_if_ready(*, session: Session, job: Job, now: datetime) -> bool:
    """Close a completed job whose conditions are all met. The caller holds the job's lock."""
    if job.status is not JobStatus.completed:
        return False
    state = closing(session, job)
    if state.missing:
        return False
    job.status, job.closed_at = JobStatus.closed, now
    jobs.touch(job, now)
    session.flush()
    events.record(
        session=session,
        job_id=job.id,
        type=EventType.job_closed,
        actor=SYSTEM.actor,
        now=now,  # type: ignore[arg-type]
        visit_number=state.visit.number if state.visit else None,
        signoff_id=state.signoff.id if state.signoff else None,
        photo_verdict=state.photo.verdict.value if state.photo else None,
        satisfaction=state.callback.satisfaction if state.callback else None,
    )
    return True


def get_closing(*, session: Session, job_id: int, caller: Caller) -> tuple[Job, Closing]:
    job = jobs.get(session=session, job_id=job_id, caller=caller)
    return job, closing(session, job)


def still_missing(session: Session, job: Job) -> list[str]:
    """What keeps a job from closing after a change to it: nothing once it is closed."""
    return [] if job.status is JobStatus.closed else closing(session, job).missing


@dataclass(frozen=True)
class Signed:
    job: Job
    signoff: SignOff
    visit: Visit
    photo: Photo


@dataclass(frozen=True)
class Called:
    job: Job
    callback: JobCallback
    visit_number: int
    missing: list[str]


@dataclass(frozen=True)
class Reviewed:
    job: Job
    review: ComplianceReview
    visit_number: int
    missing: list[str]


# --- sign-off --------------------------------------------------------------------------------


def sign_off(
    *, session: Session, job_id: int, signer_name: str, photo_id: int, caller: Caller, now: datetime
) -> Signed:
    """The customer signs off the visit, with a photo of this job taken on site."""
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    if job.status not in SIGNABLE:
        raise Conflict(
            f"job {job_id} is {job.status.value}; the customer signs off on site or once it is completed",
            code="not-signable",
            current_status=job.status.value,
        )
    visit = visits.require_visit(session, job)
    photo = session.get(Photo, photo_id)
    if photo is None or photo.job_id != job_id:
        raise Unprocessable(
            f"photo {photo_id} is not a photo of job {job_id}",
            code="photo-not-of-job",
            errors=[_field("photo_id", "not a photo of this job")],
        )
    if photo.visit_id is not None and photo.visit_id != visit.id:
        # A return visit is signed off with proof of that visit, not the photo of the fix that failed.
        raise Unprocessable(
            f"photo {photo_id} was taken on another visit of job {job_id}; sign off visit "
            f"{visit.number} with a photo of it",
            code="photo-of-another-visit",
            errors=[_field("photo_id", "taken on another visit")],
        )
    if session.scalar(select(SignOff.id).where(SignOff.visit_id == visit.id)) is not None:
        raise Conflict(f"visit {visit.number} of job {job_id} is signed off already", code="already-signed-off")
    signoff = SignOff(
        job_id=job_id,
        visit_id=visit.id,
        photo_id=photo_id,
        signer_name=signer_name,  # type: ignore[arg-type]
        signed_at=now,
        recorded_by=caller.actor,
    )
    session.add(signoff)
    session.flush()
    events.record(
        session=session,
        job_id=job_id,
        type=EventType.signed_off,
        actor=caller.actor,
        now=now,
        signer_name=signer_name,
        photo_id=photo_id,
        photo_verdict=photo.verdict.value,
        visit_number=visit.number,
    )
    close_if_ready(session=session, job=job, now=now)
    return Signed(job, signoff, visit, photo)


# --- callbacks -------------------------------------------------------------------------------


def record_callback(
    *,
    session: Session,
    job_id: int,
    reached: bool,
    fixed: bool | None,
    satisfaction: int | None,
    note: str | None,
    caller: Caller,
    now: datetime,
    settings: Settings,
) -> Called:
    """A call to the customer after the job was completed. Unreached: try again after
    ``DISPATCH_CALLBACK_RETRY_MINUTES``. Reached and fixed: the job closes if it is compliant.
    Reached and not fixed: it needs a return visit (``POST .../return-visits``)."""
    if not reached and (fixed is not None or satisfaction is not None):
        raise Unprocessable(
            "a customer who was not reached gave no answers",
            code="unreached-with-answers",
            errors=[_field("fixed" if fixed is not None else "satisfaction", "only when reached")],
        )
    if reached and fixed is None:
        raise Unprocessable(
            "say whether the customer says it is fixed",
            code="fixed-required",
            errors=[_field("fixed", "required when reached")],
        )
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    if job.status is not JobStatus.completed:
        raise Conflict(
            f"job {job_id} is {job.status.value}; customers are called back once it is completed",
            code="not-completed",
            current_status=job.status.value,
        )
    visit = _completed_visit(session, job) or visits.latest(session, job_id)
    if visit is None:
        raise Conflict(f"job {job_id} has had no visit", code="no-visit")
    attempt = (
        session.scalar(select(func.count()).select_from(JobCallback).where(JobCallback.visit_id == visit.id)) or 0
    ) + 1
    callback = JobCallback(
        job_id=job_id,
        visit_id=visit.id,
        attempt=attempt,
        reached=reached,
        fixed=fixed,  # type: ignore[arg-type]
        satisfaction=satisfaction,
        note=note,
        called_at=now,
        called_by=caller.actor,
        retry_after=None if reached else now + timedelta(minutes=settings.callback_retry_minutes),
    )
    session.add(callback)
    session.flush()
    events.record(
        session=session,
        job_id=job_id,
        type=EventType.callback,
        actor=caller.actor,
        now=now,
        attempt=attempt,
        reached=reached,
        fixed=fixed,
        satisfaction=satisfaction,
        note=note,
        retry_after=callback.retry_after.isoformat() if callback.retry_after else None,
        visit_number=visit.number,
    )
    close_if_ready(session=session, job=job, now=now)
    return Called(job, callback, visit.number, still_missing(session, job))


def callbacks_of(*, session: Session, job_id: int, caller: Caller) -> list[tuple[JobCallback, int]]:
    """Every call about a job the caller may see, oldest first, with the number of its visit."""
    jobs.get(session=session, job_id=job_id, caller=caller)
    rows = session.execute(
        select(JobCallback, Visit.number)
        .join(Visit, Visit.id == JobCallback.visit_id)
        .where(JobCallback.job_id == job_id)
        .order_by(JobCallback.id)
    )
    return [(callback, number) for callback, number in rows]


# --- compliance review -----------------------------------------------------------------------


def review(
    *, session: Session, job_id: int, passed: bool, reason: str | None, caller: Caller, now: datetime
) -> Reviewed:
    """A supervisor's verdict on the latest completed visit's proof of work. Failing needs a
    reason and blocks closing (or, on a closed job, calls for a return visit); passing also
    accepts a photo whose EXIF did not match (the supervisor checked it by eye)."""
    if not passed and not reason:
        raise Unprocessable(
            "a failed review needs a reason",
            code="reason-required",
            errors=[_field("reason", "required when the review fails")],
        )
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=True)
    visit = _completed_visit(session, job) if job.status in (JobStatus.completed, JobStatus.closed) else None
    if visit is None:
        raise Conflict(
            f"job {job_id} is {job.status.value}; reviews are of completed work",
            code="not-completed",
            current_status=job.status.value,
        )
    entry = ComplianceReview(
        job_id=job_id,
        visit_id=visit.id,
        passed=passed,
        reason=reason,  # type: ignore[arg-type]
        reviewed_by=caller.actor,
        reviewed_at=now,
    )
    session.add(entry)
    session.flush()
    events.record(
        session=session,
        job_id=job_id,
        type=EventType.compliance_reviewed,
        actor=caller.actor,
        now=now,
        passed=passed,
        reason=reason,
        visit_number=visit.number,
    )
    close_if_ready(session=session, job=job, now=now)
    return Reviewed(job, entry, visit.number, closing(session, job).missing)


# --- the dispatcher's call list ---------------------------------------------------------------


def callbacks_due(*, session: Session, now: datetime, limit: int) -> list[tuple[Job, int, datetime | None]]:
    """Completed jobs whose customer has not been reached since the visit that completed them,
    and whose retry time (if a call went unanswered) has come: (job, unreached attempts, retry
    after), longest waiting first."""
    latest = select(Visit.job_id, func.max(Visit.number).label("number")).group_by(Visit.job_id).subquery()
    last = aliased(Visit)
    reached = exists().where(JobCallback.visit_id == last.id, JobCallback.reached)
    attempts = select(func.count()).where(JobCallback.visit_id == last.id).correlate(last).scalar_subquery()
    retry_after = (
        select(func.max(JobCallback.retry_after))
        .where(JobCallback.visit_id == last.id)
        .correlate(last)
        .scalar_subquery()
    )
    due_since = func.coalesce(retry_after, Job.completed_at)
    rows = session.execute(
        select(Job, attempts, retry_after)
        .join(latest, latest.c.job_id == Job.id)
        .join(last, and_(last.job_id == latest.c.job_id, last.number == latest.c.number))
        .where(Job.status == JobStatus.completed, ~reached, or_(retry_after.is_(None), retry_after <= now))
        .order_by(due_since, Job.id)
        .limit(limit)
    ).all()
    return [(job, int(count or 0), retry) for job, count, retry in rows]


# --- figures for the KPIs ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProofFigures:
    """For visits that ended ``fixed`` in a period: how many were signed off, what their photos'
    verdicts were, how many passed compliance (as closing judges it), and what the callbacks heard.

    ``authenticity_rate``: signed-off photos that were ``verified`` / signed-off photos.
    ``compliance_rate``: compliant visits / fixed visits. ``reach_rate``: calls that reached the
    customer / calls made. Rates are None when there is nothing to divide by."""

    fixed_visits: int
    signed_off: int
    photo_verdicts: dict[str, int]
    compliant: int
    calls: int
    reached: int
    satisfaction_mean: float | None

    @property
    def authenticity_rate(self) -> float | None:
        total = sum(self.photo_verdicts.values())
        return self.photo_verdicts.get("verified", 0) / total if total else None

    @property
    def compliance_rate(self) -> float | None:
        return self.compliant / self.fixed_visits if self.fixed_visits else None

    @property
    def reach_rate(self) -> float | None:
        return self.reached / self.calls if self.calls else None


def proof_figures(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    outlet_id: int | None = None,
    technician_id: int | None = None,
) -> ProofFigures:
    """Sign-off, authenticity, compliance and callback figures for the KPI module."""
    stmt = select(Visit.id).where(Visit.outcome == VisitOutcome.fixed, Visit.left_at >= since, Visit.left_at < until)
    if technician_id is not None:
        stmt = stmt.where(Visit.technician_id == technician_id)
    if outlet_id is not None:
        stmt = stmt.join(Job, Job.id == Visit.job_id).where(Job.outlet_id == outlet_id)
    visit_ids = list(session.scalars(stmt))
    verdicts: dict[int, PhotoVerdict] = {}
    last_review: dict[int, bool] = {}
    calls, reached, scores = 0, 0, []
    for start in range(0, len(visit_ids), 500):
        chunk = visit_ids[start : start + 500]
        verdicts.update(
            (visit_id, verdict)
            for visit_id, verdict in session.execute(
                select(SignOff.visit_id, Photo.verdict)
                .join(Photo, Photo.id == SignOff.photo_id)
                .where(SignOff.visit_id.in_(chunk))
            )
        )
        for visit_id, passed in session.execute(
            select(ComplianceReview.visit_id, ComplianceReview.passed)
            .where(ComplianceReview.visit_id.in_(chunk))
            .order_by(ComplianceReview.id)
        ):
            last_review[visit_id] = passed
        for was_reached, satisfaction in session.execute(
            select(JobCallback.reached, JobCallback.satisfaction).where(JobCallback.visit_id.in_(chunk))
        ):
            calls += 1
            reached += bool(was_reached)
            if satisfaction is not None:
                scores.append(satisfaction)
    compliant = sum(
        1
        for visit_id in visit_ids
        if visit_id in verdicts
        and last_review.get(visit_id) is not False
        and (verdicts[visit_id] is not PhotoVerdict.mismatch or last_review.get(visit_id) is True)
    )
    counted: dict[str, int] = {}
    for verdict in verdicts.values():
        counted[verdict.value] = counted.get(verdict.value, 0) + 1
    return ProofFigures(
        fixed_visits=len(visit_ids),
        signed_off=len(verdicts),
        photo_verdicts=counted,
        compliant=compliant,
        calls=calls,
        reached=reached,
        satisfaction_mean=sum(scores) / len(scores) if scores else None,
    )
