from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints

from dispatch.parts.models import JobPartState, LocationKind, MovementReason, ShipmentStatus
from dispatch.schemas import (
    Category,
    Latitude,
    Longitude,
    RequestBody,
    ResponseBody,
    ShortText,
    Timestamp,
    json_number,
)

_CODE = r"^[A-Za-z0-9_.-]+$"
LocationCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=_CODE),
    Field(examples=["WAW-1"]),
]
Sku = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=_CODE),
    Field(examples=["DRUM-BELT-1200"]),
]
# Stock is counted in whole pieces; the bounds keep every sum inside a 32-bit column.
Quantity = Annotated[int, Field(ge=1, le=100_000), BeforeValidator(json_number)]
OnHand = Annotated[int, Field(ge=0, le=10_000_000), BeforeValidator(json_number)]
Hours = Annotated[float, Field(ge=0, le=24 * 366, allow_inf_nan=False), BeforeValidator(json_number)]
MovementNote = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class LocationCreate(RequestBody):
    code: LocationCode
    name: ShortText
    kind: LocationKind
    lat: Latitude
    lon: Longitude
    delivery_hours: Hours | None = Field(
        None, description="How long a shipment from the central warehouse takes to arrive here (default from settings)"
    )


class LocationPublic(ResponseBody):
    code: str
    name: str
    kind: LocationKind
    lat: float
    lon: float
    delivery_hours: float
    created_at: datetime


class PartCreate(RequestBody):
    sku: Sku
    name: ShortText
    categories: list[Category] = Field(
        default_factory=list, max_length=50, description="Product categories the part fits"
    )
    lead_time_hours: Hours = Field(description="How long the supplier takes to deliver it")


class PartPublic(ResponseBody):
    sku: str
    name: str
    categories: list[str]
    lead_time_hours: float
    created_at: datetime
    updated_at: datetime


class StockSet(RequestBody):
    on_hand: OnHand
    note: MovementNote | None = Field(None, description="Why: a count, a correction …")


class StockPublic(ResponseBody):
    location: str
    sku: str
    on_hand: int
    reserved: int
    available: int
    updated_at: datetime | None


class ReceiptCreate(RequestBody):
    sku: Sku
    quantity: Quantity
    note: MovementNote | None = None


class ReceiptPublic(ResponseBody):
    stock: StockPublic
    backorders_filled: int = Field(description="Backordered job parts this receipt filled, most urgent job first")
    quantity_to_backorders: int


class ShipmentCreate(RequestBody):
    sku: Sku
    quantity: Quantity
    from_location: LocationCode | None = Field(None, description="Where it leaves from; omit for a supplier delivery")
    to_location: LocationCode
    eta: Timestamp


class ShipmentPublic(ResponseBody):
    id: int
    sku: str
    quantity: int
    from_location: str | None
    to_location: str
    eta: datetime
    status: ShipmentStatus
    job_id: int | None
    created_by: str
    created_at: datetime
    received_at: datetime | None


class MovementPublic(ResponseBody):
    id: int
    location: str
    sku: str
    reason: MovementReason
    on_hand_change: int
    reserved_change: int
    job_id: int | None
    shipment_id: int | None
    actor: str
    note: str | None
    occurred_at: datetime


class AvailabilityPublic(ResponseBody):
    location: str
    kind: LocationKind
    available: int
    on_hand: int
    distance_km: float | None = Field(description="From the job (or the given point); null without one")


class PartRequestCreate(RequestBody):
    sku: Sku
    quantity: Quantity = 1
    note: MovementNote | None = None


class JobPartPublic(ResponseBody):
    id: int
    job_id: int
    sku: str
    quantity: int
    state: JobPartState
    location: str | None = Field(description="Where it is held, or where it is being shipped to")
    shipment_id: int | None
    eta: datetime | None = Field(description="When it should be at the location (in transit or backordered)")
    returned: int
    requested_by: str
    requested_at: datetime
    updated_at: datetime
    note: str | None


class PartReturn(RequestBody):
    quantity: Quantity
    note: MovementNote | None = None


class BackorderPublic(ResponseBody):
    id: int
    job_id: int
    sku: str
    quantity: int
    eta: datetime | None
    job_due_at: datetime
    requested_at: datetime
