from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime, enum_column


class Role(str, enum.Enum):
    admin = "admin"
    dispatcher = "dispatcher"
    supervisor = "supervisor"
    technician = "technician"
    outlet = "outlet"
    warehouse = "warehouse"
    # Front-line staff who call customers back and answer them (callbacks, goodwill requests).
    customer_service = "customer_service"


# Roles whose keys speak for one technician or one outlet.
BOUND_ROLES = {Role.technician: "technician_id", Role.outlet: "outlet_id"}


class ApiKey(SQLModel, table=True):
    """An API key. Only the SHA-256 of the secret is kept; the secret is shown once."""

    __tablename__ = "api_key"
    __table_args__ = (
        CheckConstraint("(role = 'technician') = (technician_id IS NOT NULL)", name="technician_binding"),
        CheckConstraint("(role = 'outlet') = (outlet_id IS NOT NULL)", name="outlet_binding"),
    )

    id: int = Field(default=None, primary_key=True)
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    prefix: str = Field(sa_column=Column(String(16), nullable=False))
    name: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    role: Role = Field(sa_column=Column(enum_column(Role), nullable=False))
    technician_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("technician.id"), nullable=True)
    )
    outlet_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("outlet.id"), nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # A rotated key works until then beside its successor; NULL: no end.
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    replaced_by_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    # The key whose request issued this one (a rotation of itself, or an admin's); NULL when the
    # service or the command line did. Revoking a key follows the successor it minted itself.
    created_by_key_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
