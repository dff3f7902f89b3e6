"""Sign-off photos: what arrived (by content hash), what its EXIF says, and the verdict."""

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
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime, enum_column


class PhotoVerdict(str, enum.Enum):
    verified = "verified"  # taken near the customer during the visit
    mismatch = "mismatch"  # taken far away, or at another time
    no_metadata = "no_metadata"  # nothing to check it against (no EXIF time and place)


class Photo(SQLModel, table=True):
    __tablename__ = "photo"
    __table_args__ = (
        # The same picture uploaded twice for a job is one photo (a retry from a phone).
        UniqueConstraint("job_id", "sha256"),
        Index("ix_photo_sha256", "sha256"),
    )

    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(Integer, ForeignKey("job.id"), nullable=False))
    visit_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("visit.id"), nullable=True))
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    format: str = Field(sa_column=Column(String(10), nullable=False))  # of the upload: jpeg, png, webp
    size_bytes: int = Field(sa_column=Column(Integer, nullable=False))
    width: int = Field(sa_column=Column(Integer, nullable=False))
    height: int = Field(sa_column=Column(Integer, nullable=False))
    taken_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    taken_lat: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    taken_lon: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    verdict: PhotoVerdict = Field(sa_column=Column(enum_column(PhotoVerdict), nullable=False))
    distance_m: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    time_difference_seconds: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    uploaded_by: str = Field(sa_column=Column(String(80), nullable=False))
    uploaded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

    def details(self) -> dict[str, Any]:
        return {
            "photo_id": self.id,
            "sha256": self.sha256,
            "verdict": self.verdict.value,
            "distance_m": self.distance_m,
            "time_difference_seconds": self.time_difference_seconds,
        }
