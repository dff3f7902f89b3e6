"""The job timeline. Every change to a job records an event in the same transaction, and with
it the webhook deliveries it causes (``webhooks.outbox``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.events.models import JobEvent
from dispatch.events.vocabulary import EventType
from dispatch.paging import Cut, Keyset
from dispatch.schemas import Id
from dispatch.webhooks import outbox


def record(
    *,
    session: Session,
    job_id: int,
    type: EventType,
    actor: str,
    now: datetime,
    occurred_at: datetime | None = None,
    **data: Any,
) -> None:
    record_all(session=session, job_id=job_id, now=now, entries=[entry(type, actor, occurred_at=occurred_at, **data)])


TIMELINE: Keyset[JobEvent] = Keyset("events", Id)


def timeline(*, session: Session, job_id: int, limit: int, cursor: str | None) -> Cut[JobEvent]:
    """A page of the job's timeline, oldest first."""
    stmt = select(JobEvent).where(JobEvent.job_id == job_id)
    return TIMELINE.fetch(session, stmt, JobEvent.id, cursor=cursor, limit=limit)


def entry(type: EventType, actor: str, *, occurred_at: datetime | None = None, **data: Any) -> dict[str, Any]:
    """One timeline entry, to be written with others by ``record_all``. A type outside the
    vocabulary is refused here (``ValueError``), before anything is written."""
    return {"type": EventType(type), "actor": actor, "occurred_at": occurred_at, "data": data}


def _row(job_id: int, e: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An entry as JobEvent columns: the server's time beside the caller's, no empty fields."""
    return {
        "job_id": job_id,
        "type": e["type"].value,  # the column holds the plain value, as it always has
        "actor": e["actor"],
        "occurred_at": e["occurred_at"] or now,
        "recorded_at": now,
        "data": {k: v for k, v in e["data"].items() if v is not None},
    }


def record_all(*, session: Session, job_id: int, now: datetime, entries: list[dict[str, Any]]) -> None:
    """Several entries in one statement, in the order given."""
    outbox.write(session=session, job_id=job_id, now=now, rows=[_row(job_id, e, now) for e in entries])


def record_for_jobs(*, session: Session, now: datetime, entries: dict[int, list[dict[str, Any]]]) -> None:
    """Entries of many jobs in one go (a batch of the SLA watcher), each job's in the order given."""
    rows = [_row(job_id, e, now) for job_id, job_entries in entries.items() for e in job_entries]
    if rows:
        outbox.write_many(session=session, rows=rows, now=now)
