from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime, enum_column


class PolicyName(str, enum.Enum):
    standard = "standard"  # complete within 24 h
    express = "express"  # a paid tier: on site within 2 h
    emergency = "emergency"  # safety: on site within 2 h, first in every queue


class Audience(str, enum.Enum):
    technician = "technician"
    dispatcher = "dispatcher"
    supervisor = "supervisor"


class SlaPolicy(SQLModel, table=True):
    """The targets a job is held to. Deadlines are computed from it when a job arrives and are
    stored with the job: editing a policy changes the promise for new jobs, not old ones."""

    __tablename__ = "sla_policy"

    name: PolicyName = Field(sa_column=Column(enum_column(PolicyName), primary_key=True))
    arrival_hours: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    # Every policy has a completion target: the 24-hour promise is made to every customer.
    completion_hours: float = Field(sa_column=Column(Float, nullable=False))
    at_risk_ratio: float = Field(sa_column=Column(Float, nullable=False))
    # Earlier warnings, each to someone: [{"ratio": 0.5, "notify": "technician"}, ...].
    warnings: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # None: wall-clock time (the promise to the customer). Else business hours, see sla.calendar.
    business_hours: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    pause_reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_by: str = Field(sa_column=Column(String(80), nullable=False))


class Deadline(str, enum.Enum):
    arrival = "arrival"  # technician on site
    completion = "completion"
    appointment = "appointment"  # the window the customer was promised


class Level(str, enum.Enum):
    warning = "warning"
    at_risk = "at_risk"
    breached = "breached"
    no_show = "no_show"


class SlaCheckpoint(SQLModel, table=True):
    """A moment at which someone must hear about a job: a warning, at risk, breached, a no-show.

    Computed when the job arrives; the watcher fires each one once (``fired_at``), and a
    deadline that is met, or a job that ends, makes the rest moot (``resolved_at``). Firing is
    one conditional UPDATE, so several watchers never fire the same checkpoint twice.
    """

    __tablename__ = "sla_checkpoint"
    __table_args__ = (
        Index("ix_sla_checkpoint_job_id", "job_id"),
        # The watcher's whole query: what is due and still pending.
        Index(
            "ix_sla_checkpoint_pending",
            "fires_at",
            sqlite_where=text("fired_at IS NULL AND resolved_at IS NULL"),
            postgresql_where=text("fired_at IS NULL AND resolved_at IS NULL"),
        ),
        # The supervisors' queue: escalations nobody has acknowledged.
        Index(
            "ix_sla_checkpoint_escalations",
            "audience",
            "fired_at",
            sqlite_where=text("fired_at IS NOT NULL AND acknowledged_at IS NULL"),
            postgresql_where=text("fired_at IS NOT NULL AND acknowledged_at IS NULL"),
        ),
    )

    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id", ondelete="CASCADE"), nullable=False))
    deadline: Deadline = Field(sa_column=Column(enum_column(Deadline), nullable=False))
    level: Level = Field(sa_column=Column(enum_column(Level), nullable=False))
    ratio: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    audience: Audience = Field(sa_column=Column(enum_column(Audience), nullable=False))
    fires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    fired_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    resolved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    acknowledged_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    acknowledged_by: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))


class SlaPause(SQLModel, table=True):
    """The clock stopped for a reason the policy allows (the customer asked for a later visit)."""

    __tablename__ = "sla_pause"
    __table_args__ = (Index("ix_sla_pause_job_id", "job_id"),)

    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id", ondelete="CASCADE"), nullable=False))
    reason: str = Field(sa_column=Column(String(40), nullable=False))
    note: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    started_by: str = Field(sa_column=Column(String(80), nullable=False))
    ended_by: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
