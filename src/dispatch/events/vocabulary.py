"""Every kind of entry a job's timeline can hold: a closed vocabulary.

The ``job_event.type`` column stores a member's value, so a value never changes once written
(old rows must still read). Adding a type takes a member here, its entry in
``webhooks/catalogue.py`` (public or deliberately private) and a writer that names it;
``tests/test_events_vocabulary.py`` fails until all three exist.
"""

from __future__ import annotations

import enum


class EventType(str, enum.Enum):
    """The kind of a timeline entry (not a webhook type: a subscription names those)."""

    # Intake and where the customer is
    job_created = "job_created"  # the repair request was received; always the first entry
    location_needed = "location_needed"  # the address could not be placed; the job waits for a location
    geocoded = "geocoded"  # the address was placed by the geocoder (or its cache)
    location_set = "location_set"  # a dispatcher placed the customer by hand

    # Who goes
    dispatched = "dispatched"  # the nearest available technician was chosen (auto or on request)
    dispatch_failed = "dispatch_failed"  # an auto-dispatch found nobody; says why the job waits
    assigned = "assigned"  # a dispatcher chose the technician, with a reason
    sent_back = "sent_back"  # a technician was sent back (parts in, or a return visit)
    status_changed = "status_changed"  # the job moved from one status to another

    # Visits
    visit_started = "visit_started"  # a technician's trip to the customer began
    visit_ended = "visit_ended"  # a trip ended, with its outcome (fixed, needs parts, ...)
    return_visit_planned = "return_visit_planned"  # a completed or closed job was reopened for another visit

    # Parts
    parts_reserved = "parts_reserved"  # a requested part was reserved from stock
    parts_in_transit = "parts_in_transit"  # a requested part is on its way from another location
    parts_backordered = "parts_backordered"  # a requested part is not in stock anywhere; it has an ETA
    parts_arrived = "parts_arrived"  # a part the job waited for is reserved for it now
    parts_released = "parts_released"  # a reservation was given back (the job no longer needs it)
    parts_consumed = "parts_consumed"  # parts were used on the completed job
    parts_returned = "parts_returned"  # parts taken but not used went back on the shelf

    # SLA
    sla_warning = "sla_warning"  # a warning checkpoint came due (for the technician)
    sla_at_risk = "sla_at_risk"  # an at-risk checkpoint came due (for the dispatcher)
    sla_breached = "sla_breached"  # a deadline passed unmet (arrival, completion)
    sla_no_show = "sla_no_show"  # the promised appointment window ended with nobody there
    sla_arrival_missed = "sla_arrival_missed"  # the technician arrived after the arrival deadline
    sla_paused = "sla_paused"  # the SLA clock was stopped for a reason of the job's policy
    sla_resumed = "sla_resumed"  # the SLA clock runs again; deadlines moved by the time paused
    sla_escalation_acknowledged = "sla_escalation_acknowledged"  # someone took charge of a fired checkpoint
    breach_predicted = "breach_predicted"  # the deadline will likely be missed (parts late, overloaded, too far)
    breach_no_longer_predicted = "breach_no_longer_predicted"  # that prediction no longer holds

    # Proof of work and closing
    photo_uploaded = "photo_uploaded"  # a photo of the work was uploaded
    photo_verdict = "photo_verdict"  # whether the photo's place and time match the visit
    signed_off = "signed_off"  # the customer signed the visit off
    callback = "callback"  # the customer was called after completion (reached? fixed?)
    compliance_reviewed = "compliance_reviewed"  # a supervisor's verdict on the proof of work
    job_closed = "job_closed"  # completed, called back (fixed) and compliant: the job is closed
