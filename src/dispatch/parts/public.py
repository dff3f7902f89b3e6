"""Stock, shipments, backorders and a job's parts as the API shows them: built here and nowhere else."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dispatch.jobs.models import Job
from dispatch.paging import Cut, Page
from dispatch.parts import service
from dispatch.parts.models import JobPart, Location, Part, Shipment, StockMovement
from dispatch.parts.schemas import (
    AvailabilityPublic,
    BackorderPublic,
    JobPartPublic,
    MovementPublic,
    ReceiptPublic,
    ShipmentPublic,
    StockPublic,
)
from dispatch.parts.stock import Available, Level


def stock(level: Level) -> StockPublic:
    on_hand, reserved = (level.stock.on_hand, level.stock.reserved) if level.stock else (0, 0)
    return StockPublic(
        location=level.location.code,
        sku=level.part.sku,
        on_hand=on_hand,
        reserved=reserved,
        available=on_hand - reserved,
        updated_at=level.stock.updated_at if level.stock else None,
    )


def receipt(level: Level, filled: tuple[int, int]) -> ReceiptPublic:
    lines, quantity = filled
    return ReceiptPublic(stock=stock(level), backorders_filled=lines, quantity_to_backorders=quantity)


def movements(location: Location, part: Part, rows: Cut[StockMovement]) -> Page[MovementPublic]:
    return rows.page(
        MovementPublic,
        lambda m: MovementPublic.model_validate({**m.model_dump(), "location": location.code, "sku": part.sku}),
    )


def availability(found: list[Available]) -> Page[AvailabilityPublic]:
    return Page[AvailabilityPublic](
        items=[
            AvailabilityPublic(
                location=a.location.code,
                kind=a.location.kind,
                available=a.stock.on_hand - a.stock.reserved,
                on_hand=a.stock.on_hand,
                distance_km=round(a.distance_km, 3) if a.distance_km is not None else None,
            )
            for a in found
        ]
    )


def shipments(session: Session, rows: list[Shipment]) -> list[ShipmentPublic]:
    locations, skus = service.codes(
        session,
        {s.from_location_id for s in rows} | {s.to_location_id for s in rows},
        {s.part_id for s in rows},
    )
    return [
        ShipmentPublic.model_validate(
            {
                **s.model_dump(),
                "sku": skus[s.part_id],
                "to_location": locations[s.to_location_id],
                "from_location": locations.get(s.from_location_id) if s.from_location_id else None,
            }
        )
        for s in rows
    ]


def shipment(session: Session, row: Shipment) -> ShipmentPublic:
    return shipments(session, [row])[0]


def shipment_page(session: Session, rows: Cut[Shipment]) -> Page[ShipmentPublic]:
    return Page[ShipmentPublic](items=shipments(session, rows.items), next_cursor=rows.next_cursor)


def backorders(session: Session, rows: Cut[tuple[JobPart, Job]]) -> Page[BackorderPublic]:
    _, skus = service.codes(session, set(), {line.part_id for line, _ in rows.items})
    return rows.page(
        BackorderPublic,
        lambda row: BackorderPublic(
            id=row[0].id,
            job_id=row[0].job_id,
            sku=skus[row[0].part_id],
            quantity=row[0].quantity,
            eta=row[0].eta,
            job_due_at=row[1].due_at,
            requested_at=row[0].requested_at,
        ),
    )


def _line(line: JobPart, locations: dict[int, str], skus: dict[int, str]) -> dict[str, Any]:
    return {
        "id": line.id,
        "job_id": line.job_id,
        "sku": skus[line.part_id],
        "quantity": line.quantity,
        "state": line.state,
        "location": locations.get(line.location_id) if line.location_id else None,  # type: ignore[arg-type]
        "shipment_id": line.shipment_id,
        "eta": line.eta,
        "returned": line.returned,
        "requested_by": line.requested_by,
        "requested_at": line.requested_at,
        "updated_at": line.updated_at,
        "note": line.note,
    }


def lines(session: Session, rows: list[JobPart]) -> list[JobPartPublic]:
    locations, skus = service.codes(session, {line.location_id for line in rows}, {line.part_id for line in rows})
    return [JobPartPublic.model_validate(_line(line, locations, skus)) for line in rows]


def line(session: Session, row: JobPart) -> JobPartPublic:
    return lines(session, [row])[0]
