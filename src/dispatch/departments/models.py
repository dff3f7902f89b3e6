"""Departments of the service centre, the stages of a job each one owns, and the causes a
breach or a return visit is charged to."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime, enum_column


class Stage(str, enum.Enum):
    """A stretch of a job's life that one department answers for (docs/departments.md)."""

    dispatch = "dispatch"  # waiting for a technician to be chosen: new, unable, ready
    central_warehouse = "central_warehouse"  # a part reserved at the central warehouse, not yet shipped
    shipment = "shipment"  # a part on the road to a branch
    field = "field"  # a technician holds the job: assigned, travelling, on site
    callback = "callback"  # completed, the customer not yet called back


class Department(SQLModel, table=True):
    __tablename__ = "department"

    code: str = Field(sa_column=Column(String(40), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    # How long this department may take to answer an internal question before it is a breach.
    reply_target_minutes: int = Field(sa_column=Column(Integer, nullable=False))
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default="1"))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_by: str = Field(sa_column=Column(String(80), nullable=False))


class StageTarget(SQLModel, table=True):
    """Which department owns a stage, and its internal target (an operational-level agreement)."""

    __tablename__ = "stage_target"

    stage: Stage = Field(sa_column=Column(enum_column(Stage), primary_key=True))
    department: str = Field(sa_column=Column(String(40), ForeignKey("department.code"), nullable=False))
    target_minutes: int = Field(sa_column=Column(Integer, nullable=False))


class CauseCode(SQLModel, table=True):
    """Why a customer waited or had to be visited again; an admin extends the catalogue."""

    __tablename__ = "cause_code"

    code: str = Field(sa_column=Column(String(40), primary_key=True))
    label: str = Field(sa_column=Column(String(200), nullable=False))
    # The department this cause is usually charged to; the person assigning a cause may differ.
    # None: nobody's (the customer's own time).
    department: str | None = Field(
        default=None, sa_column=Column(String(40), ForeignKey("department.code"), nullable=True)
    )
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default="1"))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_by: str = Field(sa_column=Column(String(80), nullable=False))
