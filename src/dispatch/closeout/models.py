"""What closes a job: the customer's sign-off, the callback, and the supervisor's review."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime


class SignOff(SQLModel, table=True):
    """The customer signs off a visit, with a photo taken on site. One per visit."""

    __tablename__ = "signoff"

    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id"), nullable=False, index=True))
    visit_id: int = Field(sa_column=Column(Integer, ForeignKey("visit.id"), nullable=False, unique=True))
    photo_id: int = Field(sa_column=Column(Integer, ForeignKey("photo.id"), nullable=False))
    signer_name: str = Field(sa_column=Column(String(200), nullable=False))
    signed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recorded_by: str = Field(sa_column=Column(String(80), nullable=False))


class JobCallback(SQLModel, table=True):
    """One call to the customer after a visit; unreached calls are retried."""

    __tablename__ = "job_callback"
    __table_args__ = (
        CheckConstraint("reached OR (fixed IS NULL AND satisfaction IS NULL)", name="unreached_has_no_answers"),
        CheckConstraint("satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        Index("ix_job_callback_job_id_id", "job_id", "id"),
        Index("ix_job_callback_retry_after", "retry_after"),
    )

    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id"), nullable=False))
    visit_id: int = Field(sa_column=Column(Integer, ForeignKey("visit.id"), nullable=False))
    attempt: int = Field(sa_column=Column(Integer, nullable=False))
    reached: bool = Field(sa_column=Column(Boolean, nullable=False))
    fixed: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    satisfaction: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    retry_after: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    called_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    called_by: str = Field(sa_column=Column(String(80), nullable=False))


class ComplianceReview(SQLModel, table=True):
    """A supervisor's review of a visit's proof of work. A failed review needs a reason."""

    __tablename__ = "compliance_review"
    __table_args__ = (
        CheckConstraint("passed OR reason IS NOT NULL", name="failure_has_reason"),
        Index("ix_compliance_review_job_id_id", "job_id", "id"),
    )

    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id"), nullable=False))
    visit_id: int = Field(sa_column=Column(Integer, ForeignKey("visit.id"), nullable=False))
    passed: bool = Field(sa_column=Column(Boolean, nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reviewed_by: str = Field(sa_column=Column(String(80), nullable=False))
    reviewed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
