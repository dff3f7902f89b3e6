from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime


class JobEvent(SQLModel, table=True):
    """One entry on a job's timeline: what happened, who did it, when, and when we learned of it."""

    __tablename__ = "job_event"
    __table_args__ = (Index("ix_job_event_job_id_id", "job_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id", ondelete="CASCADE"), nullable=False))
    # An EventType value (events/vocabulary.py); a plain string column, so values never migrate.
    type: str = Field(sa_column=Column(String(50), nullable=False))
    actor: str = Field(sa_column=Column(String(80), nullable=False))
    # occurred_at is the device's or caller's time; recorded_at is the server's.
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
