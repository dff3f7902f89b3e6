from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
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


class LocationKind(str, enum.Enum):
    central = "central"  # the central warehouse: ships to branches
    branch = "branch"  # where technicians collect parts


class Location(SQLModel, table=True):
    """A place that holds stock."""

    __tablename__ = "location"
    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="coordinates"),
        # There is one central warehouse.
        Index(
            "uq_location_one_central",
            "kind",
            unique=True,
            sqlite_where=text("kind = 'central'"),
            postgresql_where=text("kind = 'central'"),
        ),
    )

    id: int = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    kind: LocationKind = Field(sa_column=Column(enum_column(LocationKind), nullable=False))
    lat: float = Field(sa_column=Column(Float, nullable=False))
    lon: float = Field(sa_column=Column(Float, nullable=False))
    # How long the central warehouse takes to deliver here.
    delivery_hours: float = Field(sa_column=Column(Float, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Part(SQLModel, table=True):
    """A catalogue entry."""

    __tablename__ = "part"
    __table_args__ = (CheckConstraint("lead_time_hours >= 0", name="lead_time_not_negative"),)

    id: int = Field(default=None, primary_key=True)
    sku: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    # Product categories the part fits, as plain strings like technicians' skills.
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # How long the supplier takes to replenish: the ETA of a backorder nothing is on the way for.
    lead_time_hours: float = Field(sa_column=Column(Float, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Stock(SQLModel, table=True):
    """How many of a part a location holds, and how many of those are promised to jobs.

    The database refuses oversell on its own: reserved never exceeds on hand, neither goes
    negative. The service changes both only with conditional UPDATEs.
    """

    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
        Index("ix_stock_part_id", "part_id"),
    )

    location_id: int = Field(sa_column=Column(Integer, ForeignKey("location.id"), primary_key=True))
    part_id: int = Field(sa_column=Column(Integer, ForeignKey("part.id"), primary_key=True))
    on_hand: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    reserved: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class MovementReason(str, enum.Enum):
    counted = "counted"  # stock level set by a count
    received = "received"  # goods received from a supplier
    reserved = "reserved"  # promised to a job
    released = "released"  # a job no longer needs it
    consumed = "consumed"  # used on a completed job
    returned = "returned"  # unused, back from the technician
    shipped = "shipped"  # left for another location
    arrived = "arrived"  # came in from another location or supplier


class StockMovement(SQLModel, table=True):
    """The stock ledger: every change of on hand or reserved, who made it, when and why."""

    __tablename__ = "stock_movement"
    __table_args__ = (Index("ix_stock_movement_location_part", "location_id", "part_id", "id"),)

    id: int = Field(default=None, primary_key=True)
    location_id: int = Field(sa_column=Column(Integer, ForeignKey("location.id"), nullable=False))
    part_id: int = Field(sa_column=Column(Integer, ForeignKey("part.id"), nullable=False))
    reason: MovementReason = Field(sa_column=Column(enum_column(MovementReason), nullable=False))
    on_hand_change: int = Field(sa_column=Column(Integer, nullable=False))
    reserved_change: int = Field(sa_column=Column(Integer, nullable=False))
    job_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("job.id"), nullable=True))
    shipment_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("shipment.id"), nullable=True))
    actor: str = Field(sa_column=Column(String(80), nullable=False))
    note: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ShipmentStatus(str, enum.Enum):
    in_transit = "in_transit"
    received = "received"


class Shipment(SQLModel, table=True):
    """Stock on its way: from the central warehouse (or another location) to a branch, or from
    a supplier (no origin) into a location."""

    __tablename__ = "shipment"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_shipment_part_id_status_eta", "part_id", "status", "eta"),
    )

    id: int = Field(default=None, primary_key=True)
    part_id: int = Field(sa_column=Column(Integer, ForeignKey("part.id"), nullable=False))
    quantity: int = Field(sa_column=Column(Integer, nullable=False))
    from_location_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("location.id"), nullable=True)
    )
    to_location_id: int = Field(sa_column=Column(Integer, ForeignKey("location.id"), nullable=False))
    eta: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: ShipmentStatus = Field(sa_column=Column(enum_column(ShipmentStatus), nullable=False))
    # Set when the shipment carries one job's parts; such stock arrives already reserved.
    job_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("job.id"), nullable=True))
    created_by: str = Field(sa_column=Column(String(80), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    received_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class JobPartState(str, enum.Enum):
    reserved = "reserved"  # held at a location for the job
    in_transit = "in_transit"  # held on a shipment to the technician's branch
    backordered = "backordered"  # nobody has it; waiting for goods to arrive
    consumed = "consumed"  # used: the job was completed
    released = "released"  # given back: the job was cancelled or the part was not needed


WAITING = frozenset({JobPartState.in_transit, JobPartState.backordered})
HELD = frozenset({JobPartState.reserved, JobPartState.in_transit})


class JobPart(SQLModel, table=True):
    """Parts a job asked for. A backorder that is filled in pieces splits into several lines."""

    __tablename__ = "job_part"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("state <> 'backordered' OR location_id IS NULL", name="backorder_has_no_location"),
        CheckConstraint("state IN ('backordered', 'released') OR location_id IS NOT NULL", name="held_has_location"),
        Index("ix_job_part_job_id", "job_id"),
        # Filling backorders starts here: one SKU's open backorders (ordered by the job's deadline).
        Index(
            "ix_job_part_backorders",
            "part_id",
            sqlite_where=text("state = 'backordered'"),
            postgresql_where=text("state = 'backordered'"),
        ),
        Index("ix_job_part_shipment_id", "shipment_id"),
    )

    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id"), nullable=False))
    part_id: int = Field(sa_column=Column(Integer, ForeignKey("part.id"), nullable=False))
    quantity: int = Field(sa_column=Column(Integer, nullable=False))
    state: JobPartState = Field(sa_column=Column(enum_column(JobPartState), nullable=False))
    # Where the stock is held (reserved, consumed) or is going to (in transit).
    location_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("location.id"), nullable=True))
    shipment_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("shipment.id"), nullable=True))
    eta: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    returned: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    requested_by: str = Field(sa_column=Column(String(80), nullable=False))
    requested_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    note: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
