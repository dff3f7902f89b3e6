"""The job's status machine: which moves are legal, and who may make them."""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    new = "new"  # received, waiting for a technician
    assigned = "assigned"
    en_route = "en_route"
    on_site = "on_site"
    completed = "completed"
    unable = "unable"  # the technician could not do it; waiting to be dispatched again
    waiting_parts = "waiting_parts"  # a part is backordered or on its way; nobody is sent yet
    ready = "ready"  # the parts are in; waiting for a technician to be sent back
    cancelled = "cancelled"
    closed = "closed"  # completed, called back (fixed) and compliant; only a return visit reopens it


TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.new: frozenset({JobStatus.assigned, JobStatus.waiting_parts, JobStatus.cancelled}),
    # A technician who forgets to tap "en route" may still arrive.
    JobStatus.assigned: frozenset(
        {JobStatus.en_route, JobStatus.on_site, JobStatus.unable, JobStatus.waiting_parts, JobStatus.cancelled}
    ),
    JobStatus.en_route: frozenset({JobStatus.on_site, JobStatus.unable, JobStatus.waiting_parts, JobStatus.cancelled}),
    JobStatus.on_site: frozenset({JobStatus.completed, JobStatus.unable, JobStatus.waiting_parts, JobStatus.cancelled}),
    JobStatus.unable: frozenset({JobStatus.assigned, JobStatus.waiting_parts, JobStatus.cancelled}),
    # Left only by the parts arriving (sent back, or ready when nobody can go) or a cancellation.
    JobStatus.waiting_parts: frozenset({JobStatus.assigned, JobStatus.ready, JobStatus.cancelled}),
    JobStatus.ready: frozenset({JobStatus.assigned, JobStatus.waiting_parts, JobStatus.cancelled}),
    JobStatus.completed: frozenset(),
    JobStatus.cancelled: frozenset(),
    # Closing a completed job, and reopening a completed or closed one for a return visit, are
    # not status changes anyone reports: the closeout and visits domains do them by their rules.
    JobStatus.closed: frozenset(),
}

# Statuses a job may be dispatched (or assigned by hand) from.
DISPATCHABLE = frozenset({JobStatus.new, JobStatus.unable, JobStatus.ready})
# A dispatcher may also move a job to another technician before they set off.
REASSIGNABLE = DISPATCHABLE | {JobStatus.assigned}
# While in these, the job holds one unit of its technician's capacity.
HOLDS_CAPACITY = frozenset({JobStatus.assigned, JobStatus.en_route, JobStatus.on_site})
# A part request that leaves anything backordered or in transit parks the job in waiting_parts.
WAITS_FOR_PARTS_FROM = frozenset(
    {JobStatus.new, JobStatus.assigned, JobStatus.en_route, JobStatus.on_site, JobStatus.unable, JobStatus.ready}
)
OPEN = frozenset(set(JobStatus) - {JobStatus.completed, JobStatus.cancelled, JobStatus.closed})
# Done and finished with: the SLA outcome (met or missed) is final for these.
FINISHED = frozenset({JobStatus.completed, JobStatus.closed})
# What a technician reports from the phone; dispatchers may also cancel.
TECHNICIAN_STATUSES = frozenset({JobStatus.en_route, JobStatus.on_site, JobStatus.completed, JobStatus.unable})
DISPATCHER_STATUSES = TECHNICIAN_STATUSES | {JobStatus.cancelled}


def can_move(current: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[current]
