"""Which timeline entries a subscriber can ask for, under their public names.

Every job change writes a ``job_event`` row; a subscription names public event types, and
one timeline entry may answer to several (a status change to ``completed`` is both
``job.status_changed`` and ``job.completed``). Types whose timeline entries are written by
other parts of the service (SLA watchers for ``at_risk``/``breached``, callbacks for
``closed``) are delivered as soon as those entries exist.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

EventType = Literal[
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
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

_BY_TIMELINE_TYPE: dict[str, tuple[str, ...]] = {
    "job_created": ("job.created",),
    "assigned": ("job.assigned",),
    "dispatched": ("job.assigned",),
    "sent_back": ("job.assigned",),
    "reassigned": ("job.assigned",),
    "parts_backordered": ("job.parts_backordered",),
    "parts_arrived": ("job.parts_arrived",),
    "breach_predicted": ("job.at_risk",),
    "at_risk": ("job.at_risk",),
    "sla_at_risk": ("job.at_risk",),
    "sla_no_show": ("job.at_risk",),
    "breached": ("job.breached",),
    "sla_breached": ("job.breached",),
    "closed": ("job.closed",),
    "job_closed": ("job.closed",),
}


def public_types(timeline_type: str, data: dict[str, Any]) -> tuple[str, ...]:
    """The public event types a timeline entry counts as, most specific first."""
    if timeline_type == "status_changed":
        to = data.get("to")
        if to == "completed":
            return ("job.completed", "job.status_changed")
        if to == "closed":
            return ("job.closed", "job.status_changed")
        return ("job.status_changed",)
    return _BY_TIMELINE_TYPE.get(timeline_type, ())
