"""The outbox: deliveries are written in the same transaction as the timeline entry.

``events.service`` writes every timeline entry through ``write``: when some active
subscription may want the job's events, the entries are inserted with ``RETURNING`` and a
delivery row is added per matching subscription, in the same transaction. A change that
rolls back sends nothing; a crash after the commit still sends (the worker finds the rows).
Written here rather than by a dispatcher that scans ``job_event`` by id, because on
PostgreSQL ids are not committed in order: a scanner's cursor can pass an id whose
transaction commits later, and that event would never be sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from dispatch.events.models import JobEvent
from dispatch.jobs.models import Job
from dispatch.webhooks.catalogue import public_types
from dispatch.webhooks.models import DeliveryState, WebhookDelivery, WebhookSubscription

_INSERT_EVENTS = insert(JobEvent)
_INSERT_EVENTS_RETURNING = insert(JobEvent).returning(JobEvent.id, sort_by_parameter_order=True)
_INSERT_DELIVERIES = insert(WebhookDelivery)


def _subscribers(job_id: int) -> Any:
    outlet = select(Job.outlet_id).where(Job.id == job_id).scalar_subquery()
    return select(WebhookSubscription.id, WebhookSubscription.event_types).where(
        WebhookSubscription.active.is_(True),
        or_(WebhookSubscription.outlet_id.is_(None), WebhookSubscription.outlet_id == outlet),
    )


def write(*, session: Session, job_id: int, rows: list[dict[str, Any]], now: datetime) -> None:
    """Insert timeline entries (dicts of JobEvent columns) and their deliveries."""
    subscriptions = session.execute(_subscribers(job_id)).all()
    if not subscriptions:
        session.execute(_INSERT_EVENTS, rows)
        return
    _insert_with_deliveries(session, rows, now, lambda row: subscriptions)


def write_many(*, session: Session, rows: list[dict[str, Any]], now: datetime) -> None:
    """``write`` for entries of many jobs at once (the SLA watcher's batch): one query for the
    subscriptions, one insert of the entries, one of the deliveries. Each job's entries keep
    their order, so deliveries stay in order per job."""
    job_ids = sorted({row["job_id"] for row in rows})
    outlets = dict(session.execute(select(Job.id, Job.outlet_id).where(Job.id.in_(job_ids))).all())
    active = session.execute(
        select(
            WebhookSubscription.id,
            WebhookSubscription.outlet_id,
            WebhookSubscription.event_types,
        ).where(WebhookSubscription.active.is_(True))
    ).all()
    if not active:
        session.execute(_INSERT_EVENTS, rows)
        return

    def subscribers(row: dict[str, Any]) -> list[tuple[int, list[str]]]:
        outlet = outlets.get(row["job_id"])
        return [(sid, wanted) for sid, owner, wanted in active if owner is None or owner == outlet]

    _insert_with_deliveries(session, rows, now, subscribers)


def _insert_with_deliveries(
    session: Session,
    rows: list[dict[str, Any]],
    now: datetime,
    subscribers: Callable[[dict[str, Any]], Iterable[tuple[int, list[str]]]],
) -> None:
    """The entries, and a delivery for each subscription of ``subscribers(entry)`` that asked
    for one of the entry's public types (the first it asked for names the delivery)."""
    ids = list(session.scalars(_INSERT_EVENTS_RETURNING, rows))
    deliveries = []
    for event_id, row in zip(ids, rows, strict=True):
        types = public_types(row["type"], row["data"])
        if not types:
            continue
        for subscription_id, wanted in subscribers(row):
            match = next((t for t in types if t in wanted), None)
            if match is None:
                continue
            deliveries.append(
                {
                    "subscription_id": subscription_id,
                    "event_id": event_id,
                    "job_id": row["job_id"],
                    "event_type": match,
                    "state": DeliveryState.pending,
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,
                    "retry_from": now,
                }
            )
    if deliveries:
        session.execute(_INSERT_DELIVERIES, deliveries)
