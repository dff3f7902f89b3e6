"""Which timeline entries a subscriber can ask for, under their public names.

Every job change writes a ``job_event`` row of an ``EventType``; a subscription names public
webhook types, and one timeline entry may answer to several (a status change to ``completed``
is both ``job.status_changed`` and ``job.completed``). ``CATALOGUE`` maps every member of
``EventType``, each to its public types or to ``PRIVATE`` on purpose, so what is delivered
cannot drift from what is written (``tests/test_events_vocabulary.py`` checks both ways).
"""

from __future__ import annotations

from typing import Any, Literal

from dispatch.events.vocabulary import EventType

WebhookType = Literal[
    "job.created",
    "job.assigned",
    "job.status_changed",
    "job.parts_backordered",
    "job.parts_arrived",
    "job.at_risk",
    "job.breached",
    "job.completed",
    "job.closed",
]
WEBHOOK_TYPES: tuple[str, ...] = WebhookType.__args__  # type: ignore[attr-defined]

# Not delivered, on purpose: the service's own bookkeeping, or news for the people inside the
# service (technicians, dispatchers, supervisors) rather than for the outlet's system.
PRIVATE: tuple[WebhookType, ...] = ()

CATALOGUE: dict[EventType, tuple[WebhookType, ...]] = {
    EventType.job_created: ("job.created",),
    EventType.location_needed: PRIVATE,
    EventType.geocoded: PRIVATE,
    EventType.location_set: PRIVATE,
    EventType.dispatched: ("job.assigned",),
    EventType.dispatch_failed: PRIVATE,  # the job still waits; a dispatcher's matter
    EventType.assigned: ("job.assigned",),
    EventType.sent_back: ("job.assigned",),
    EventType.status_changed: ("job.status_changed",),  # and job.completed: see public_types
    EventType.visit_started: PRIVATE,  # the status change that starts a visit is public
    EventType.visit_ended: PRIVATE,
    EventType.return_visit_planned: PRIVATE,  # the technician sent back is public (job.assigned)
    EventType.parts_reserved: PRIVATE,
    EventType.parts_in_transit: PRIVATE,
    EventType.parts_backordered: ("job.parts_backordered",),
    EventType.parts_arrived: ("job.parts_arrived",),
    EventType.parts_released: PRIVATE,
    EventType.parts_consumed: PRIVATE,
    EventType.parts_returned: PRIVATE,
    EventType.sla_warning: PRIVATE,  # for the technician; the outlet hears at risk
    EventType.sla_at_risk: ("job.at_risk",),
    EventType.sla_breached: ("job.breached",),
    EventType.sla_no_show: ("job.at_risk",),
    EventType.sla_arrival_missed: PRIVATE,
    EventType.sla_paused: PRIVATE,
    EventType.sla_resumed: PRIVATE,
    EventType.sla_escalation_acknowledged: PRIVATE,
    EventType.breach_predicted: ("job.at_risk",),
    EventType.breach_no_longer_predicted: PRIVATE,
    EventType.photo_uploaded: PRIVATE,  # proof of work is reviewed inside the service
    EventType.photo_verdict: PRIVATE,
    EventType.signed_off: PRIVATE,
    EventType.callback: PRIVATE,
    EventType.compliance_reviewed: PRIVATE,
    EventType.job_closed: ("job.closed",),
}


def public_types(timeline_type: EventType | str, data: dict[str, Any]) -> tuple[WebhookType, ...]:
    """The public webhook types a timeline entry counts as, most specific first. A type outside
    the vocabulary is a bug, refused (``ValueError``) rather than silently never delivered."""
    kind = EventType(timeline_type)
    if kind is EventType.status_changed and data.get("to") == "completed":
        return ("job.completed", "job.status_changed")
    return CATALOGUE[kind]
