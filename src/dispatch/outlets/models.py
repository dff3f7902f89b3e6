from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime


class Outlet(SQLModel, table=True):
    """A retail shop or dealer whose own system sends repair requests."""

    __tablename__ = "outlet"

    id: int = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
