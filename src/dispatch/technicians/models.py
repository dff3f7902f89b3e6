from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Time,
)
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime


class Technician(SQLModel, table=True):
    __tablename__ = "technician"
    __table_args__ = (
        CheckConstraint("open_jobs >= 0", name="open_jobs_not_negative"),
        CheckConstraint("capacity >= 1", name="capacity_positive"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="coordinates"),
    )

    id: int = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False))
    phone: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    lat: float = Field(sa_column=Column(Float, nullable=False))
    lon: float = Field(sa_column=Column(Float, nullable=False))
    location_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # Capacity is how many open jobs the technician may hold; open_jobs is kept by the
    # conditional UPDATE that assigns a job, so racing dispatches cannot overbook.
    capacity: int = Field(sa_column=Column(Integer, nullable=False))
    open_jobs: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    on_duty: bool = Field(sa_column=Column(Boolean, nullable=False))
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default="1"))
    shift_start: time | None = Field(default=None, sa_column=Column(Time, nullable=True))
    shift_end: time | None = Field(default=None, sa_column=Column(Time, nullable=True))
    shift_days: str | None = Field(default=None, sa_column=Column(String(7), nullable=True))
    timezone: str = Field(sa_column=Column(String(64), nullable=False, server_default="UTC"))
    home_branch: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class TechnicianSkill(SQLModel, table=True):
    """One row per technician and skill, carrying the technician's position.

    This is the dispatch search index: (skill, lat_band, lon) finds the technicians with a
    skill inside a box with one short index range per latitude band.
    """

    __tablename__ = "technician_skill"
    __table_args__ = (Index("ix_technician_skill_search", "skill", "lat_band", "lon"),)

    technician_id: int = Field(
        sa_column=Column(Integer, ForeignKey("technician.id", ondelete="CASCADE"), primary_key=True)
    )
    skill: str = Field(sa_column=Column(String(64), primary_key=True))
    lat_band: int = Field(sa_column=Column(Integer, nullable=False))
    lat: float = Field(sa_column=Column(Float, nullable=False))
    lon: float = Field(sa_column=Column(Float, nullable=False))
