"""The stock ledger: locations, the catalogue, and every change of stock levels.

All changes of ``on_hand`` and ``reserved`` go through :func:`move`, one conditional UPDATE
that the database re-checks under its row lock, plus one ledger row. Oversell is refused by
that condition and, should code ever get it wrong, by the table's CHECK constraints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dispatch import versions
from dispatch.config import Settings
from dispatch.errors import Conflict, NotFound, Unprocessable
from dispatch.geo import geodesic_km
from dispatch.paging import Cut, Keyset
from dispatch.parts.models import (
    Location,
    LocationKind,
    MovementReason,
    Part,
    Stock,
    StockMovement,
)
from dispatch.parts.schemas import LocationCreate, PartCreate
from dispatch.schemas import Id

# Where a code or SKU came from in the request, as a field error's loc: ("body", "sku"), ("query", "sku").
Loc = tuple[str, str]


def _field_error(loc: Loc, msg: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": "value_error"}


# --- locations and catalogue -------------------------------------------------------------


def create_location(*, session: Session, location_in: LocationCreate, settings: Settings, now: datetime) -> Location:
    if session.scalar(select(Location.id).where(Location.code == location_in.code)) is not None:
        raise Conflict(f"location {location_in.code!r} already exists", code="duplicate-location")
    if location_in.kind is LocationKind.central and session.scalar(
        select(Location.code).where(Location.kind == LocationKind.central)
    ):
        raise Conflict("there is already a central warehouse", code="central-exists")
    location = Location(
        code=location_in.code,
        name=location_in.name,
        kind=location_in.kind,
        lat=location_in.lat,
        lon=location_in.lon,
        created_at=now,
        delivery_hours=location_in.delivery_hours
        if location_in.delivery_hours is not None
        else (0.0 if location_in.kind is LocationKind.central else settings.parts_delivery_hours),
    )
    session.add(location)
    session.flush()
    return location


LOCATIONS: Keyset[Location] = Keyset("locations", Id)
PARTS: Keyset[Part] = Keyset("parts", Id)
STOCK_AT: Keyset[Any] = Keyset("location-stock", Id, key=lambda row: (row[1].id,))  # rows of (Stock, Part)
MOVEMENTS: Keyset[StockMovement] = Keyset("stock-movements", Id)


def list_locations(*, session: Session, limit: int, cursor: str | None) -> Cut[Location]:
    return LOCATIONS.fetch(session, select(Location), Location.id, cursor=cursor, limit=limit)


def location(*, session: Session, code: str, field: Loc | None = None) -> Location:
    """A location by code: 404 when named in the path, 422 when named in a body or query ``field``."""
    found = session.scalar(select(Location).where(Location.code == code))
    if found is None:
        if field is not None:
            raise Unprocessable(
                f"no location with code {code!r}",
                code="unknown-location",
                errors=[_field_error(field, "unknown location")],
            )
        raise NotFound(f"location {code!r} not found", code="location-not-found")
    return found


def central(session: Session) -> Location | None:
    return session.scalar(select(Location).where(Location.kind == LocationKind.central))


def nearest_branch(session: Session, lat: float | None, lon: float | None) -> Location | None:
    branches = list(session.scalars(select(Location).where(Location.kind == LocationKind.branch).order_by(Location.id)))
    if not branches or lat is None or lon is None:
        return branches[0] if branches else None
    return min(branches, key=lambda b: geodesic_km(lat, lon, b.lat, b.lon))


def create_part(*, session: Session, part_in: PartCreate, now: datetime) -> Part:
    if session.scalar(select(Part.id).where(Part.sku == part_in.sku)) is not None:
        raise Conflict(f"part {part_in.sku!r} already exists", code="duplicate-sku")
    part = Part(
        sku=part_in.sku,
        name=part_in.name,
        categories=sorted(set(part_in.categories)),
        lead_time_hours=part_in.lead_time_hours,
        created_at=now,
        updated_at=now,
    )
    session.add(part)
    session.flush()
    return part


def list_parts(*, session: Session, limit: int, cursor: str | None, category: str | None = None) -> Cut[Part]:
    stmt = PARTS.seek(select(Part), Part.id, cursor=cursor, limit=limit)
    if category is None:
        return PARTS.cut(session.scalars(stmt).all(), limit)
    # Categories are a short JSON list; filtering them in Python, a batch at a time, keeps one
    # query shape for both databases (a catalogue is thousands of rows, not millions).
    found: list[Part] = []
    while len(found) <= limit:
        batch = list(session.scalars(stmt.limit(500)))
        found += [p for p in batch if category in p.categories]
        if len(batch) < 500:
            break
        stmt = stmt.where(Part.id > batch[-1].id)
    return PARTS.cut(found, limit)


def part(*, session: Session, sku: str, field: Loc | None = None, for_update: bool = False) -> Part:
    """A part by SKU: 404 when named in the path, 422 when named in a body or query ``field``.

    ``for_update`` locks the catalogue row: every decision about who gets a SKU's stock
    (reserve, backorder, fill) holds it, so a backorder cannot slip past a receipt."""
    stmt = select(Part).where(Part.sku == sku)
    if for_update:
        stmt = stmt.with_for_update()
    found = session.scalar(stmt)
    if found is None:
        if field is not None:
            raise Unprocessable(
                f"no part with SKU {sku!r}", code="unknown-sku", errors=[_field_error(field, "unknown SKU")]
            )
        raise NotFound(f"part {sku!r} not found", code="part-not-found")
    return found


def lock_parts(session: Session, part_ids: list[int]) -> None:
    """Lock catalogue rows in id order (the lock order is: parts, then jobs, then technicians)."""
    if part_ids:
        session.execute(
            select(Part.id).where(Part.id.in_(sorted(set(part_ids)))).order_by(Part.id).with_for_update()
        ).all()


# --- stock levels --------------------------------------------------------------------------


def ensure_stock_row(session: Session, location_id: int, part_id: int, now: datetime) -> None:
    """Create the (location, part) row if it is missing; concurrent creators do not collide."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(Stock)
        .values(location_id=location_id, part_id=part_id, on_hand=0, reserved=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["location_id", "part_id"])
    )


def level(session: Session, location_id: int, part_id: int) -> Stock | None:
    return session.get(Stock, (location_id, part_id), populate_existing=True)


def version(location_id: int, part_id: int, stock: Stock | None) -> str:
    """What a stock count overwrites: on hand. Reservations move all day and a count never
    touches them (it may not drop below them), so they are not part of it (docs/parts.md)."""
    return versions.version_of(location_id, part_id, stock.on_hand if stock is not None else 0)


@dataclass(frozen=True)
class Level:
    """A part's stock at a location; ``stock`` is None where it has never had any."""

    location: Location
    part: Part
    stock: Stock | None

    @property
    def version(self) -> str:
        return version(self.location.id, self.part.id, self.stock)  # type: ignore[arg-type]


def level_of(session: Session, location: Location, part: Part) -> Level:
    return Level(location, part, level(session, location.id, part.id))  # type: ignore[arg-type]


def stock_level(*, session: Session, code: str, sku: str) -> Level:
    return level_of(session, location(session=session, code=code), part(session=session, sku=sku))


def stock_at(*, session: Session, code: str, limit: int, cursor: str | None) -> Cut[Level]:
    """Every part this location has a stock record for, by part."""
    place = location(session=session, code=code)
    stmt = select(Stock, Part).join(Part, Part.id == Stock.part_id).where(Stock.location_id == place.id)
    rows = STOCK_AT.fetch(session, stmt, Part.id, cursor=cursor, limit=limit)
    return Cut([Level(place, part, level) for level, part in rows.items], rows.next_cursor)


# The one statement that changes stock. The WHERE clause is the rule: the row after the change
# must still have 0 <= reserved <= on_hand. Zero rows updated means the change would oversell.
_MOVE = (
    update(Stock)
    .where(
        Stock.location_id == bindparam("l"),
        Stock.part_id == bindparam("p"),
        Stock.reserved + bindparam("dr") >= 0,
        Stock.on_hand + bindparam("dh") >= Stock.reserved + bindparam("dr"),
    )
    .values(
        on_hand=Stock.on_hand + bindparam("dh"), reserved=Stock.reserved + bindparam("dr"), updated_at=bindparam("now")
    )
    .execution_options(synchronize_session=False)
)


@dataclass(frozen=True)
class Why:
    """Who changes stock and on whose behalf: the ledger's columns besides the quantities."""

    actor: str
    now: datetime
    job_id: int | None = None
    shipment_id: int | None = None
    note: str | None = None


def move(
    session: Session,
    *,
    location_id: int,
    part_id: int,
    reason: MovementReason,
    why: Why,
    on_hand: int = 0,
    reserved: int = 0,
) -> bool:
    """Change a stock level by the given amounts and record it; False (and nothing written)
    when the change would leave reserved above on hand or either below zero."""
    ensure_stock_row(session, location_id, part_id, why.now)
    result = session.execute(_MOVE, {"l": location_id, "p": part_id, "dh": on_hand, "dr": reserved, "now": why.now})
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.add(
        StockMovement(
            location_id=location_id,
            part_id=part_id,
            reason=reason,
            on_hand_change=on_hand,
            reserved_change=reserved,
            job_id=why.job_id,
            shipment_id=why.shipment_id,
            actor=why.actor,
            note=why.note,
            occurred_at=why.now,
        )
    )
    return True


def move_or_refuse(session: Session, **kwargs: Any) -> None:
    if not move(session, **kwargs):
        raise Conflict("not enough stock available for that", code="insufficient-stock")


def movements(
    *, session: Session, code: str, sku: str, limit: int, cursor: str | None
) -> tuple[Location, Part, Cut[StockMovement]]:
    """The ledger of one part at one location, oldest first."""
    place, item = location(session=session, code=code), part(session=session, sku=sku)
    stmt = select(StockMovement).where(StockMovement.location_id == place.id, StockMovement.part_id == item.id)
    return place, item, MOVEMENTS.fetch(session, stmt, StockMovement.id, cursor=cursor, limit=limit)


@dataclass(frozen=True)
class Available:
    location: Location
    stock: Stock
    distance_km: float | None


def available(
    *, session: Session, part_id: int, lat: float | None, lon: float | None, minimum: int = 1
) -> list[Available]:
    """Locations with at least ``minimum`` of the part free, nearest first (by id without a point)."""
    rows = session.execute(
        select(Location, Stock)
        .join(Stock, Stock.location_id == Location.id)
        .where(Stock.part_id == part_id, Stock.on_hand - Stock.reserved >= minimum)
        .order_by(Location.id)
    ).all()
    found = [
        Available(loc, stock, geodesic_km(lat, lon, loc.lat, loc.lon) if lat is not None and lon is not None else None)
        for loc, stock in rows
    ]
    return sorted(found, key=lambda a: (a.distance_km is None, a.distance_km or 0.0))
