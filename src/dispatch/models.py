"""Every table, imported in one place so Alembic and tests see the whole schema."""

from sqlmodel import SQLModel

from dispatch.auth.models import ApiKey
from dispatch.closeout.models import ComplianceReview, JobCallback, SignOff
from dispatch.departments.models import CauseCode, Department, StageTarget
from dispatch.events.models import JobEvent
from dispatch.geocoding.models import GeocodeCacheEntry
from dispatch.idempotency.models import IdempotencyKey
from dispatch.jobs.models import Job
from dispatch.outlets.models import Outlet
from dispatch.parts.models import JobPart, Location, Part, Shipment, Stock, StockMovement
from dispatch.photos.models import Photo
from dispatch.sla.models import SlaCheckpoint, SlaPause, SlaPolicy
from dispatch.technicians.models import Technician, TechnicianSkill
from dispatch.visits.models import Visit
from dispatch.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription

metadata = SQLModel.metadata

__all__ = [
    "ApiKey",
    "CauseCode",
    "ComplianceReview",
    "Department",
    "GeocodeCacheEntry",
    "IdempotencyKey",
    "Job",
    "JobCallback",
    "JobEvent",
    "JobPart",
    "Location",
    "Outlet",
    "Part",
    "Photo",
    "Shipment",
    "SignOff",
    "SlaCheckpoint",
    "SlaPause",
    "SlaPolicy",
    "StageTarget",
    "Stock",
    "StockMovement",
    "Technician",
    "TechnicianSkill",
    "Visit",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "metadata",
]
