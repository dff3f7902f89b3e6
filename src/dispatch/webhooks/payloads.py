"""What each webhook delivery carries, as schemas: the `webhooks` section of the OpenAPI
document (3.1) is generated from these and the catalogue, and tests validate real deliveries
against them (unknown fields are refused), so the documented payloads cannot drift from what is
sent.

A delivery is the envelope ``{type, timestamp, data: {event_id, job_id, outlet_id, external_ref,
event}}`` around one timeline entry (``event``: its type, actor, device time and data). Fields
a timeline entry does not have are left out, not sent as null.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI
from pydantic import BaseModel, ConfigDict, Field, create_model

from dispatch.webhooks.catalogue import WEBHOOK_TYPES, timeline_types


def _open_to_additions(schema: dict[str, Any]) -> None:
    # Tests refuse unknown fields so the schemas stay exact; the published spec does not promise
    # that no field will ever be added (receivers ignore what they do not know).
    schema.pop("additionalProperties", None)


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra=_open_to_additions)


class JobCreatedData(_Data):
    due_at: datetime = Field(description="The completion deadline")
    arrival_due_at: datetime | None = Field(None, description="On site by (express and emergency jobs)")
    sla_policy: str
    priority: str
    service_tier: str
    product_category: str
    external_ref: str | None = None


class ArrivalWindow(_Data):
    start: datetime
    end: datetime
    basis: Literal["appointment", "deadline"] = Field(
        description="`appointment`: the window agreed with the customer; `deadline`: from the assignment "
        "until the deadline the job is racing (on site for express and emergency jobs, else completed)"
    )


class AssignedData(_Data):
    technician_id: int
    previous_technician_id: int | None = None
    technician_first_name: str | None = Field(None, description="Who is coming, for the customer: the first name only")
    arrival_window: ArrivalWindow | None = None
    distance_km: float | None = None
    searched_radius_km: float | None = None
    reason: str | None = Field(None, description="A dispatcher's reason for choosing by hand")
    without_skill: bool | None = Field(None, description="Assigned by hand to someone without the skill")
    off_duty: bool | None = Field(None, description="Assigned by hand to someone off duty or off shift")
    continuity: bool | None = Field(None, description="Sent back: the technician who was there before")
    visit_number: int | None = Field(None, description="Sent back for this return visit")


class StatusChangedData(_Data):
    from_: str = Field(alias="from")
    to: str
    technician_id: int | None = None
    previous_technician_id: int | None = None
    note: str | None = None
    lat: float | None = None
    lon: float | None = None
    reason: str | None = Field(None, description="Why a job became `ready` rather than sent back")
    parts_eta: datetime | None = Field(None, description="Parked for parts: when the last one should arrive")
    visit_number: int | None = None


class PartsData(_Data):
    line_id: int
    sku: str
    quantity: int
    location: str | None = None
    shipment_id: int | None = None
    eta: datetime | None = None


class SlaData(_Data):
    """An SLA checkpoint that fired (`sla_at_risk`, `sla_no_show`, `sla_breached`), or a breach
    predicted before it comes (`breach_predicted`)."""

    checkpoint_id: int | None = None
    deadline: str | None = Field(None, description="arrival, completion or appointment")
    ratio: float | None = Field(None, description="The share of the allowed time that had gone")
    notify: str | None = Field(None, description="Who is told: dispatchers or supervisors")
    reason: str | None = Field(None, description="Why a breach is predicted")
    parts_eta: datetime | None = None
    due_at: datetime | None = None


class ClosedData(_Data):
    visit_number: int | None = None
    signoff_id: int | None = None
    photo_verdict: str | None = None
    satisfaction: int | None = None


DATA_OF: dict[str, type[_Data]] = {
    "job.created": JobCreatedData,
    "job.assigned": AssignedData,
    "job.status_changed": StatusChangedData,
    "job.completed": StatusChangedData,
    "job.parts_backordered": PartsData,
    "job.parts_arrived": PartsData,
    "job.at_risk": SlaData,
    "job.breached": SlaData,
    "job.closed": ClosedData,  # closing is not a status change, so only `job_closed` entries
}

_SUMMARY = {
    "job.created": "A job was received",
    "job.assigned": "A technician was assigned: who is coming (first name) and the arrival window",
    "job.status_changed": "The job's status changed (a technician's tap, a cancellation, parts)",
    "job.completed": "The technician completed the job",
    "job.parts_backordered": "A part the job needs is backordered; the job waits for it",
    "job.parts_arrived": "A part the job waited for is in",
    "job.at_risk": "The job may miss its deadline (time has run short, a breach is predicted, or a no-show)",
    "job.breached": "The job missed a deadline",
    "job.closed": "The job is closed: called back, fixed and compliant",
}


def _model_name(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))


def delivery_model(event_type: str) -> type[BaseModel]:
    """The body of a delivery of ``event_type``."""
    name = _model_name(event_type)
    kinds = timeline_types(event_type)
    event = create_model(
        f"{name}DeliveryEvent",
        __base__=_Data,
        type=(Literal[kinds], Field(description="The timeline entry's own type")),  # type: ignore[arg-type]  # a Literal of the catalogue's types, built at run time
        actor=(str, Field(description="Who did it: `system`, `dispatcher:key-3`, `technician:12`, …")),
        occurred_at=(datetime, Field(description="When it happened (device time for a technician's tap)")),
        data=(DATA_OF[event_type], ...),
    )
    data = create_model(
        f"{name}DeliveryData",
        __base__=_Data,
        event_id=(int, Field(description="The timeline entry's id")),
        job_id=(int, ...),
        outlet_id=(int | None, ...),
        external_ref=(str | None, Field(description="Your own order number for the job")),
        event=(event, ...),
    )
    return create_model(
        f"{name}Delivery",
        __base__=_Data,
        type=(Literal[event_type], ...),  # type: ignore[arg-type]  # a Literal built at run time from the catalogue
        timestamp=(datetime, Field(description="When the service recorded the event")),
        data=(data, ...),
    )


DELIVERIES: dict[str, type[BaseModel]] = {t: delivery_model(t) for t in WEBHOOK_TYPES}


def document(app: FastAPI) -> None:
    """One entry per event type in the spec's `webhooks` section."""
    for event_type, model in DELIVERIES.items():

        async def receive(payload: Any) -> None:  # a description, never called
            return None

        receive.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("payload", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[model, Body()])]
        )
        app.webhooks.add_api_route(
            event_type,
            receive,
            methods=["POST"],
            name=f"webhook_{event_type.replace('.', '_')}",
            summary=_SUMMARY[event_type],
            description=f"Sent to subscriptions that asked for `{event_type}`, signed with Standard Webhooks "
            "headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`); deduplicate on `webhook-id`. "
            "See docs/integration.md.",
            responses={200: {"description": "Any 2xx within the timeout acknowledges the delivery"}},
            status_code=200,
            generate_unique_id_function=lambda route: route.name,
        )


def tidy(spec: dict[str, Any]) -> dict[str, Any]:
    """FastAPI describes a route's own 422 for every body it reads; a webhook's receiver is the
    subscriber's server, whose answers are only 2xx or not."""
    for operations in spec.get("webhooks", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            ok = operation.get("responses", {}).get("200", {})
            ok.pop("content", None)
    return spec
