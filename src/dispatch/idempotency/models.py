from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime


class IdempotencyKey(SQLModel, table=True):
    """One ``Idempotency-Key`` a caller sent with a write, and the first answer it got.

    Unique per (owner, key): the owner is who the key speaks for (``outlet:7``,
    ``technician:3``, ``dispatcher:key-12``), so an outlet's rotated key replays the same
    requests and outlet A's key never replays to outlet B. ``status`` is NULL while the first
    request is still running (its lock); the answer is kept until ``expires_at``.
    """

    __tablename__ = "idempotency_key"
    __table_args__ = (
        UniqueConstraint("owner", "key", name="uq_idempotency_key_owner_key"),
        Index("ix_idempotency_key_expires_at", "expires_at"),
    )

    id: int = Field(default=None, primary_key=True)
    owner: str = Field(sa_column=Column(String(80), nullable=False))
    key: str = Field(sa_column=Column(String(255), nullable=False))
    method: str = Field(sa_column=Column(String(10), nullable=False))
    path: str = Field(sa_column=Column(String(500), nullable=False))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    locked_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    headers: list[Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
