from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from dispatch.database.types import UTCDateTime, enum_column


class WebhookSubscription(SQLModel, table=True):
    """A URL that wants some of the job events. An outlet's subscription sees its own jobs;
    an admin's without an outlet sees every job."""

    __tablename__ = "webhook_subscription"
    __table_args__ = (Index("ix_webhook_subscription_outlet_id", "outlet_id"),)

    id: int = Field(default=None, primary_key=True)
    outlet_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("outlet.id"), nullable=True))
    url: str = Field(sa_column=Column(String(2000), nullable=False))
    event_types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    description: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    # The signing secret: needed in clear to sign, so it is stored as given out (whsec_...).
    secret: str = Field(sa_column=Column(String(100), nullable=False))
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default="1"))
    disabled_reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    created_by: str = Field(sa_column=Column(String(80), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class DeliveryState(str, enum.Enum):
    pending = "pending"  # waiting for its turn, or for its next attempt
    succeeded = "succeeded"
    failed = "failed"  # gave up after the retry window (or the endpoint is gone); can be redelivered


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: the outbox row, written in the event's own transaction."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        # The worker's scan: due pending deliveries.
        Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
        Index("ix_webhook_delivery_subscription_id_id", "subscription_id", "id"),
        # Per-job order: is an earlier event of this job still pending for this subscription?
        Index(
            "ix_webhook_delivery_pending_chain",
            "subscription_id",
            "job_id",
            "event_id",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: int = Field(default=None, primary_key=True)
    subscription_id: int = Field(
        sa_column=Column(Integer, ForeignKey("webhook_subscription.id", ondelete="CASCADE"), nullable=False)
    )
    event_id: int = Field(sa_column=Column(Integer, ForeignKey("job_event.id", ondelete="CASCADE"), nullable=False))
    job_id: int = Field(sa_column=Column(Integer, nullable=False))
    event_type: str = Field(sa_column=Column(String(50), nullable=False))
    state: DeliveryState = Field(sa_column=Column(enum_column(DeliveryState), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # Retries run for DISPATCH_WEBHOOK_RETRY_HOURS from here (creation, or the last redelivery).
    retry_from: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # A worker's claim while it sends: others skip the row until the lease runs out.
    leased_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    leased_by: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    last_status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class WebhookAttempt(SQLModel, table=True):
    """One try at sending a delivery: what the receiver said, or why there was no answer."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (Index("ix_webhook_attempt_delivery_id", "delivery_id", "id"),)

    id: int = Field(default=None, primary_key=True)
    delivery_id: int = Field(
        sa_column=Column(Integer, ForeignKey("webhook_delivery.id", ondelete="CASCADE"), nullable=False)
    )
    attempted_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    duration_ms: int = Field(sa_column=Column(Integer, nullable=False))
