from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, Field, StringConstraints

from dispatch.schemas import Id, RequestBody, ResponseBody
from dispatch.webhooks.catalogue import WebhookType
from dispatch.webhooks.models import DeliveryState


def _parsable_url(value: str) -> str:
    """As the delivery worker's HTTP client (httpx) will read it, so that a subscription it
    cannot send to (``http://0177.0.0.1/``, an emoji host) is refused here, not at every try."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # httpx takes any port number; the standard library checks the range
        url = httpx.URL(value)
    except (ValueError, httpx.InvalidURL) as exc:  # IDNA errors are ValueErrors too
        raise ValueError(f"not a valid URL: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http or https URL with a host")
    return value


WebhookUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=8, max_length=2000, pattern=r"^https?://[^\s/?#]+[^\s]*$"),
    AfterValidator(_parsable_url),
]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class WebhookCreate(RequestBody):
    url: WebhookUrl = Field(examples=["https://shop.example/hooks/dispatch"])
    event_types: list[WebhookType] = Field(min_length=1, max_length=20)
    description: Description = ""
    outlet_id: Id | None = Field(
        default=None, description="Admin only: whose jobs (none: every job). An outlet's key subscribes for itself."
    )


class WebhookUpdate(RequestBody):
    url: WebhookUrl | None = None
    event_types: list[WebhookType] | None = Field(default=None, min_length=1, max_length=20)
    description: Description | None = None
    active: bool | None = Field(default=None, description="true turns a disabled subscription back on")


class WebhookPublic(ResponseBody):
    id: int
    outlet_id: int | None
    url: str
    event_types: list[str]
    description: str
    active: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="The signing secret (whsec_...). Shown once.")


class DeliveryPublic(ResponseBody):
    id: int
    subscription_id: int
    event_id: int
    job_id: int
    event_type: str
    state: DeliveryState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


class AttemptPublic(ResponseBody):
    id: int
    attempted_at: datetime
    status: int | None
    error: str | None
    duration_ms: int


class DeliveryDetail(DeliveryPublic):
    attempts_made: list[AttemptPublic] = Field(description="Newest first, at most 100")
