"""Visits: every trip to the customer, numbered per job."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime, enum_column


class VisitOutcome(str, enum.Enum):
    fixed = "fixed"
    needs_parts = "needs_parts"
    not_fixed = "not_fixed"
    customer_absent = "customer_absent"


class VisitReason(str, enum.Enum):
    """Why the visit happens: the first trip, a follow-up within the same round of work (after
    parts, or after the technician could not finish), or a return visit to a job that had been
    completed (the reasons a dispatcher gives)."""

    first = "first"
    follow_up = "follow_up"
    callback_not_fixed = "callback_not_fixed"
    compliance_failed = "compliance_failed"
    fault_returned = "fault_returned"
    customer_request = "customer_request"
    other = "other"


RETURN_REASONS = frozenset(
    {
        VisitReason.callback_not_fixed,
        VisitReason.compliance_failed,
        VisitReason.fault_returned,
        VisitReason.customer_request,
        VisitReason.other,
    }
)


class Visit(SQLModel, table=True):
    """One trip to the customer. Times are the phone's (device) times from the status taps; a
    return visit is planned (no times yet) when the dispatcher asks for it."""

    __tablename__ = "visit"
    __table_args__ = (
        UniqueConstraint("job_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint("(left_at IS NULL) = (outcome IS NULL)", name="ended_has_outcome"),
        Index("ix_visit_left_at", "left_at"),
    )

    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id"), nullable=False))
    number: int = Field(sa_column=Column(Integer, nullable=False))
    technician_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("technician.id"), nullable=True)
    )
    reason: VisitReason = Field(sa_column=Column(enum_column(VisitReason), nullable=False))
    planned_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    en_route_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    on_site_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    left_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    outcome: VisitOutcome | None = Field(default=None, sa_column=Column(enum_column(VisitOutcome), nullable=True))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_by: str = Field(sa_column=Column(String(80), nullable=False))

    @property
    def started(self) -> bool:
        return self.en_route_at is not None or self.on_site_at is not None
