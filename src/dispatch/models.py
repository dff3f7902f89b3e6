"""Every table, imported in one place so Alembic and tests see the whole schema."""

from sqlmodel import SQLModel

from dispatch.auth.models import ApiKey
from dispatch.events.models import JobEvent
from dispatch.geocoding.models import GeocodeCacheEntry
from dispatch.idempotency.models import IdempotencyKey
from dispatch.jobs.models import Job
from dispatch.outlets.models import Outlet
from dispatch.parts.models import JobPart, Location, Part, Shipment, Stock, StockMovement
from dispatch.technicians.models import Technician, TechnicianSkill
from dispatch.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription

metadata = SQLModel.metadata

__all__ = [
    "ApiKey", "GeocodeCacheEntry", "IdempotencyKey", "Job", "JobEvent", "JobPart", "Location", "Outlet", "Part", "Shipment", "Stock",
    "StockMovement", "Technician", "TechnicianSkill", "WebhookAttempt", "WebhookDelivery",
    "WebhookSubscription", "metadata",
]
