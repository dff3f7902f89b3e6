from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Float, String, Text
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime


class GeocodeCacheEntry(SQLModel, table=True):
    """An address the geocoder has already answered, shared by every app process."""

    __tablename__ = "geocode_cache"

    query_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    query: str = Field(sa_column=Column(Text, nullable=False))
    lat: float = Field(sa_column=Column(Float, nullable=False))
    lon: float = Field(sa_column=Column(Float, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
