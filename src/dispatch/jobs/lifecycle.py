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
    cancelled = "cancelled"


TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.new: frozenset({JobStatus.assigned, JobStatus.cancelled}),
    # A technician who forgets to tap "en route" may still arrive.
    JobStatus.assigned: frozenset(
        {JobStatus.en_route, JobStatus.on_site, JobStatus.unable, JobStatus.cancelled}
    ),
    JobStatus.en_route: frozenset({JobStatus.on_site, JobStatus.unable, JobStatus.cancelled}),
    JobStatus.on_site: frozenset({JobStatus.completed, JobStatus.unable, JobStatus.cancelled}),
    JobStatus.unable: frozenset({JobStatus.assigned, JobStatus.cancelled}),
    JobStatus.completed: frozenset(),
    JobStatus.cancelled: frozenset(),
}

# Statuses a job may be dispatched (or assigned by hand) from.
DISPATCHABLE = frozenset({JobStatus.new, JobStatus.unable})
# A dispatcher may also move a job to another technician before they set off.
REASSIGNABLE = DISPATCHABLE | {JobStatus.assigned}
# While in these, the job holds one unit of its technician's capacity.
HOLDS_CAPACITY = frozenset({JobStatus.assigned, JobStatus.en_route, JobStatus.on_site})
OPEN = frozenset(set(JobStatus) - {JobStatus.completed, JobStatus.cancelled})
# What a technician reports from the phone; dispatchers may also cancel.
TECHNICIAN_STATUSES = frozenset(
    {JobStatus.en_route, JobStatus.on_site, JobStatus.completed, JobStatus.unable}
)
DISPATCHER_STATUSES = TECHNICIAN_STATUSES | {JobStatus.cancelled}


def can_move(current: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[current]
