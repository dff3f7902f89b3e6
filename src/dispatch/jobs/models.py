from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime, enum_column
from dispatch.jobs.lifecycle import JobStatus


class Priority(str, enum.Enum):
    low = "low"
    normal = "normal"
    high = "high"
    emergency = "emergency"  # safety: gas, water leak, broken glass


class ServiceTier(str, enum.Enum):
    standard = "standard"
    express = "express"


class Job(SQLModel, table=True):
    """A repair request and its work order."""

    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("outlet_id", "external_ref"),
        CheckConstraint("(lat IS NULL) = (lon IS NULL)", name="coordinates_together"),
        CheckConstraint("lat IS NULL OR (lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180)", name="coordinates"),
        CheckConstraint(
            "(technician_id IS NOT NULL) OR status IN ('new', 'unable', 'cancelled', 'waiting_parts', 'ready')",
            name="assigned_has_technician",
        ),
        Index("ix_job_status_due_at", "status", "due_at"),
        Index("ix_job_due_at_id", "due_at", "id"),
        Index("ix_job_technician_id_status", "technician_id", "status"),
        # The at-risk queue: open jobs (only they have a next deadline), emergencies first.
        Index(
            "ix_job_sla_queue",
            "urgency",
            "next_due_at",
            "id",
            sqlite_where=text("next_due_at IS NOT NULL"),
            postgresql_where=text("next_due_at IS NOT NULL"),
        ),
        Index("ix_job_reported_at", "reported_at"),
        # The watcher's "can anyone get there in time": arrival deadlines nobody has met yet.
        Index(
            "ix_job_arrival_pending",
            "arrival_due_at",
            sqlite_where=text("arrived_at IS NULL AND arrival_due_at IS NOT NULL"),
            postgresql_where=text("arrived_at IS NULL AND arrival_due_at IS NOT NULL"),
        ),
        # Jobs typed in by dispatchers have no outlet; NULLs never collide in the unique
        # constraint above, so their order numbers need an index of their own.
        Index(
            "uq_job_external_ref_no_outlet",
            "external_ref",
            unique=True,
            sqlite_where=text("outlet_id IS NULL"),
            postgresql_where=text("outlet_id IS NULL"),
        ),
    )

    id: int = Field(default=None, primary_key=True)
    outlet_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("outlet.id"), nullable=True))
    external_ref: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))

    customer_name: str = Field(sa_column=Column(String(200), nullable=False))
    customer_phone: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    customer_address: str = Field(sa_column=Column(String(500), nullable=False))
    lat: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    lon: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    needs_location: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))

    product_category: str = Field(sa_column=Column(String(64), nullable=False))
    product_model: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    product_serial: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    product_batch: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    product_purchased_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))

    fault: str = Field(sa_column=Column(Text, nullable=False))
    priority: Priority = Field(sa_column=Column(enum_column(Priority), nullable=False))
    service_tier: ServiceTier = Field(sa_column=Column(enum_column(ServiceTier), nullable=False))

    reported_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    at_risk_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    appointment_start: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    appointment_end: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))

    status: JobStatus = Field(sa_column=Column(enum_column(JobStatus), nullable=False))
    technician_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("technician.id"), nullable=True)
    )
    assigned_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    cancelled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # Proof of work (issue 5): closed once the callback says fixed and compliance passes;
    # return visits reopen a completed or closed job and are counted here.
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    return_visits: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))

    # Parts still to come (backordered or in transit): what, and when the last should arrive.
    waiting_for_parts: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    parts_eta: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # Why the deadline is expected to be missed before it comes (e.g. a part arrives too late).
    predicted_breach: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))

    # The SLA the job is held to (see dispatch.sla): which policy, every deadline that applies,
    # and the next one due. Deadlines are fixed at intake and moved only by pauses.
    sla_policy: str = Field(default="standard", sa_column=Column(String(20), nullable=False, server_default="standard"))
    arrival_due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    arrival_at_risk_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    arrived_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    arrival_missed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    # NULL once the job is finished: only open jobs are in the at-risk queue.
    next_due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    next_at_risk_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # 0 for emergencies, which go first in every queue; 1 for everything else.
    urgency: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    paused_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))

    # Where the time went: seconds spent in each stage, added up at every status change.
    status_since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    seconds_dispatch: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    seconds_assigned: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    seconds_travel: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    seconds_on_site: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    seconds_parts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    seconds_customer: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # From reported_at to completed_at, set at completion: the KPIs add these up.
    resolution_seconds: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))

    created_by: str = Field(sa_column=Column(String(80), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
