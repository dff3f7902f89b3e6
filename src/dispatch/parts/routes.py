from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch import versions
from dispatch.auth.dependencies import CallerDep, allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import (
    CursorQuery,
    IdPath,
    IdQuery,
    IfMatchHeader,
    LimitQuery,
    NowDep,
    SettingsDep,
    UnitOfWorkDep,
)
from dispatch.errors import NotFound, Unprocessable, problem_responses
from dispatch.jobs import service as jobs
from dispatch.parts import service, stock
from dispatch.parts.models import Location, Part, Shipment, ShipmentStatus, Stock
from dispatch.parts.schemas import (
    AvailabilityPublic,
    BackorderPublic,
    JobPartPublic,
    LocationCode,
    LocationCreate,
    LocationPublic,
    MovementPublic,
    PartCreate,
    PartPublic,
    PartRequestCreate,
    PartReturn,
    ReceiptCreate,
    ReceiptPublic,
    ShipmentCreate,
    ShipmentPublic,
    Sku,
    StockPublic,
    StockSet,
)
from dispatch.schemas import (
    Category,
    Page,
    decode_id_cursor,
    encode_id_cursor,
    id_page,
)

_ERRORS = problem_responses(400, 401, 403, 413, 422)
locations_router = APIRouter(prefix="/v1/locations", tags=["stock"], responses=_ERRORS)
parts_router = APIRouter(prefix="/v1/parts", tags=["stock"], responses=_ERRORS)
shipments_router = APIRouter(prefix="/v1/shipments", tags=["stock"], responses=_ERRORS)
backorders_router = APIRouter(prefix="/v1/backorders", tags=["stock"], responses=_ERRORS)
job_parts_router = APIRouter(prefix="/v1/jobs/{job_id}/parts", tags=["jobs"], responses=_ERRORS)

Warehouse = Depends(allow(Role.warehouse))
StockReaders = Depends(allow(Role.warehouse, Role.dispatcher, Role.supervisor))
CatalogueReaders = Depends(allow(Role.warehouse, Role.dispatcher, Role.supervisor, Role.technician))
CodePath = Annotated[str, LocationCode]
SkuPath = Annotated[str, Sku]


# --- locations and their stock ---------------------------------------------------------------


@locations_router.post(
    "", status_code=201, response_model=LocationPublic, dependencies=[Warehouse], responses=problem_responses(409)
)
async def create_location(
    body: LocationCreate, uow: UnitOfWorkDep, settings: SettingsDep, now: NowDep
) -> LocationPublic:
    """The central warehouse (one) or a branch, with its coordinates."""
    return await uow.run(
        lambda session: LocationPublic.model_validate(
            stock.create_location(session=session, location_in=body, settings=settings, now=now)
        )
    )


@locations_router.get("", response_model=Page[LocationPublic], dependencies=[StockReaders])
async def list_locations(
    uow: UnitOfWorkDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[LocationPublic]:
    after_id = decode_id_cursor(cursor)
    return await uow.run(
        lambda session: id_page(
            LocationPublic, stock.list_locations(session=session, limit=limit + 1, after_id=after_id), limit
        )
    )


@locations_router.get(
    "/{code}", response_model=LocationPublic, dependencies=[StockReaders], responses=problem_responses(404)
)
async def get_location(code: CodePath, uow: UnitOfWorkDep) -> LocationPublic:
    return await uow.run(lambda session: LocationPublic.model_validate(stock.location(session=session, code=code)))


def _stock_public(location: Location, part: Part, level: Stock | None) -> StockPublic:
    on_hand, reserved = (level.on_hand, level.reserved) if level else (0, 0)
    return StockPublic(
        location=location.code,
        sku=part.sku,
        on_hand=on_hand,
        reserved=reserved,
        available=on_hand - reserved,
        updated_at=level.updated_at if level else None,
    )


@locations_router.get(
    "/{code}/stock", response_model=Page[StockPublic], dependencies=[StockReaders], responses=problem_responses(404)
)
async def list_location_stock(
    code: CodePath, uow: UnitOfWorkDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[StockPublic]:
    """Every part this location has a stock record for, by part."""
    after_id = decode_id_cursor(cursor)

    def work(session: Session) -> Page[StockPublic]:
        location = stock.location(session=session, code=code)
        stmt = (
            select(Stock, Part)
            .join(Part, Part.id == Stock.part_id)
            .where(Stock.location_id == location.id)
            .order_by(Part.id)
            .limit(limit + 1)
        )
        if after_id is not None:
            stmt = stmt.where(Part.id > after_id)
        rows = session.execute(stmt).all()
        items = [_stock_public(location, part, level) for level, part in rows[:limit]]
        more = len(rows) > limit
        return Page[StockPublic](items=items, next_cursor=encode_id_cursor(rows[limit - 1][1].id) if more else None)

    return await uow.run(work)


@locations_router.get(
    "/{code}/stock/{sku}",
    response_model=StockPublic,
    dependencies=[StockReaders],
    responses={**problem_responses(404), **versions.etag_header()},
)
async def get_stock(code: CodePath, sku: SkuPath, uow: UnitOfWorkDep, response: Response) -> StockPublic:
    """On hand, reserved for jobs, and available. The `ETag` is what a count sends as `If-Match`."""

    def work(session: Session) -> StockPublic:
        location, part = stock.location(session=session, code=code), stock.part(session=session, sku=sku)
        return _stock_answer(session, location, part, response)

    return await uow.run(work)


@locations_router.put(
    "/{code}/stock/{sku}",
    response_model=StockPublic,
    dependencies=[Warehouse],
    responses={**problem_responses(404, 409, 412), **versions.etag_header()},
)
async def set_stock(
    code: CodePath,
    sku: SkuPath,
    body: StockSet,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.warehouse))],
    response: Response,
    if_match: IfMatchHeader = None,
) -> StockPublic:
    """Set on hand after a count. Never below what is reserved; a rise fills backorders first.
    Send the `ETag` you read as `If-Match`: if goods came in or went out since, the count is
    refused with 412 instead of silently undoing them."""

    def work(session: Session) -> StockPublic:
        location, part = service.set_stock(
            session=session,
            code=code,
            sku=sku,
            on_hand=body.on_hand,
            note=body.note,
            caller=caller,
            now=now,
            settings=settings,
            if_match=versions.parse_if_match(if_match),
        )
        return _stock_answer(session, location, part, response)

    return await uow.run(work)


def _stock_answer(session: Session, location: Location, part: Part, response: Response) -> StockPublic:
    level = stock.level(session, location.id, part.id)  # type: ignore[arg-type]
    response.headers["ETag"] = versions.etag(stock.version(location.id, part.id, level))  # type: ignore[arg-type]
    return _stock_public(location, part, level)


@locations_router.get(
    "/{code}/stock/{sku}/movements",
    response_model=Page[MovementPublic],
    dependencies=[StockReaders],
    responses=problem_responses(404),
)
async def list_stock_movements(
    code: CodePath, sku: SkuPath, uow: UnitOfWorkDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[MovementPublic]:
    """The ledger for one part at one location, oldest first: who changed what, when, why, for which job."""
    after_id = decode_id_cursor(cursor)

    def work(session: Session) -> Page[MovementPublic]:
        location, part = stock.location(session=session, code=code), stock.part(session=session, sku=sku)
        rows = stock.movements(
            session=session,
            location_id=location.id,
            part_id=part.id,
            limit=limit + 1,  # type: ignore[arg-type]
            after_id=after_id,
        )
        return id_page(
            MovementPublic,
            rows,
            limit,
            lambda m: MovementPublic.model_validate({**m.model_dump(), "location": location.code, "sku": part.sku}),
        )

    return await uow.run(work)


@locations_router.post(
    "/{code}/receipts", status_code=201, response_model=ReceiptPublic, responses=problem_responses(404)
)
async def receive_goods(
    code: CodePath,
    body: ReceiptCreate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.warehouse))],
) -> ReceiptPublic:
    """Goods received: they fill backorders first, most urgent job first; the rest is free stock."""

    def work(session: Session) -> ReceiptPublic:
        location, part, (filled, quantity) = service.receive_goods(
            session=session,
            code=code,
            sku=body.sku,
            quantity=body.quantity,
            note=body.note,
            caller=caller,
            now=now,
            settings=settings,
        )
        level = stock.level(session, location.id, part.id)  # type: ignore[arg-type]
        return ReceiptPublic(
            stock=_stock_public(location, part, level), backorders_filled=filled, quantity_to_backorders=quantity
        )

    return await uow.run(work)


# --- the catalogue ----------------------------------------------------------------------------


@parts_router.post(
    "", status_code=201, response_model=PartPublic, dependencies=[Warehouse], responses=problem_responses(409)
)
async def create_part(body: PartCreate, uow: UnitOfWorkDep, now: NowDep) -> PartPublic:
    return await uow.run(
        lambda session: PartPublic.model_validate(stock.create_part(session=session, part_in=body, now=now))
    )


@parts_router.get("", response_model=Page[PartPublic], dependencies=[CatalogueReaders])
async def list_parts(
    uow: UnitOfWorkDep,
    category: Annotated[Category | None, Query()] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[PartPublic]:
    """The catalogue; `category` lists the parts that fit a product category."""
    after_id = decode_id_cursor(cursor)
    return await uow.run(
        lambda session: id_page(
            PartPublic, stock.list_parts(session=session, limit=limit + 1, after_id=after_id, category=category), limit
        )
    )


@parts_router.get(
    "/{sku}", response_model=PartPublic, dependencies=[CatalogueReaders], responses=problem_responses(404)
)
async def get_part(sku: SkuPath, uow: UnitOfWorkDep) -> PartPublic:
    return await uow.run(lambda session: PartPublic.model_validate(stock.part(session=session, sku=sku)))


@parts_router.get("/{sku}/availability", response_model=Page[AvailabilityPublic], responses=problem_responses(404))
async def part_availability(
    sku: SkuPath,
    uow: UnitOfWorkDep,
    caller: Annotated[Caller, Depends(allow(Role.warehouse, Role.dispatcher, Role.supervisor, Role.technician))],
    job_id: IdQuery = None,
    # Not the strict body types: a query string is text, so "52.23" must be read as a number.
    lat: Annotated[float | None, Query(ge=-90, le=90, allow_inf_nan=False, examples=[52.2297])] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180, allow_inf_nan=False, examples=[21.0122])] = None,
    limit: LimitQuery = 20,
) -> Page[AvailabilityPublic]:
    """Where the part is free, nearest to the job (or to `lat`/`lon`) first."""
    if (lat is None) != (lon is None) or (job_id is not None and lat is not None):
        raise Unprocessable(
            "give job_id, or lat and lon together, or nothing",
            code="invalid-position",
            errors=[{"loc": ["query", "lat"], "msg": "job_id or lat and lon", "type": "value_error"}],
        )

    def work(session: Session) -> Page[AvailabilityPublic]:
        part = stock.part(session=session, sku=sku)
        point = (lat, lon)
        if job_id is not None:
            job = jobs.get(session=session, job_id=job_id, caller=caller)
            point = (job.lat, job.lon)
        found = stock.available(session=session, part_id=part.id, lat=point[0], lon=point[1])  # type: ignore[arg-type]
        return Page[AvailabilityPublic](
            items=[
                AvailabilityPublic(
                    location=a.location.code,
                    kind=a.location.kind,
                    available=a.stock.on_hand - a.stock.reserved,
                    on_hand=a.stock.on_hand,
                    distance_km=round(a.distance_km, 3) if a.distance_km is not None else None,
                )
                for a in found[:limit]
            ],
            next_cursor=None,
        )

    return await uow.run(work)


# --- shipments and backorders ------------------------------------------------------------------


def _shipment_public(session: Session, shipment: Shipment) -> ShipmentPublic:
    return _shipments_public(session, [shipment])[0]


def _shipments_public(session: Session, shipments: list[Shipment]) -> list[ShipmentPublic]:
    locations, skus = service.codes(
        session,
        {s.from_location_id for s in shipments} | {s.to_location_id for s in shipments},
        {s.part_id for s in shipments},
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
        for s in shipments
    ]


@shipments_router.post("", status_code=201, response_model=ShipmentPublic, responses=problem_responses(409))
async def create_shipment(
    body: ShipmentCreate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.warehouse))],
) -> ShipmentPublic:
    """Stock sent from one location to another (it leaves the origin now), or a supplier delivery on its way."""
    return await uow.run(
        lambda session: _shipment_public(
            session,
            service.create_shipment(session=session, shipment_in=body, caller=caller, now=now, settings=settings),
        )
    )


@shipments_router.get("", response_model=Page[ShipmentPublic], dependencies=[StockReaders])
async def list_shipments(
    uow: UnitOfWorkDep,
    sku: Annotated[Sku | None, Query()] = None,
    to_location: Annotated[LocationCode | None, Query()] = None,
    status: ShipmentStatus | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ShipmentPublic]:
    """What arrives where and when; `status=in_transit` for what is still on its way."""
    after_id = decode_id_cursor(cursor)

    def work(session: Session) -> Page[ShipmentPublic]:
        part_id = stock.part(session=session, sku=sku, field=("query", "sku")).id if sku else None
        location_id = (
            stock.location(session=session, code=to_location, field=("query", "to_location")).id
            if to_location
            else None
        )
        rows = service.shipments(
            session=session,
            part_id=part_id,
            to_location_id=location_id,
            status=status,
            limit=limit + 1,
            after_id=after_id,
        )
        more = len(rows) > limit
        return Page[ShipmentPublic](
            items=_shipments_public(session, rows[:limit]),
            next_cursor=encode_id_cursor(rows[limit - 1].id) if more else None,
        )

    return await uow.run(work)


@shipments_router.get(
    "/{shipment_id}", response_model=ShipmentPublic, dependencies=[StockReaders], responses=problem_responses(404)
)
async def get_shipment(shipment_id: IdPath, uow: UnitOfWorkDep) -> ShipmentPublic:
    def work(session: Session) -> ShipmentPublic:
        shipment = session.get(Shipment, shipment_id)
        if shipment is None:
            raise NotFound(f"shipment {shipment_id} not found", code="shipment-not-found")
        return _shipment_public(session, shipment)

    return await uow.run(work)


@shipments_router.post("/{shipment_id}/receive", response_model=ShipmentPublic, responses=problem_responses(404, 409))
async def receive_shipment(
    shipment_id: IdPath,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.warehouse))],
) -> ShipmentPublic:
    """The shipment arrived: the jobs' parts on it are reserved there, the rest fills backorders."""
    return await uow.run(
        lambda session: _shipment_public(
            session,
            service.receive_shipment(
                session=session, shipment_id=shipment_id, caller=caller, now=now, settings=settings
            ),
        )
    )


@backorders_router.get("", response_model=Page[BackorderPublic], dependencies=[StockReaders])
async def list_backorders(
    uow: UnitOfWorkDep, sku: Annotated[Sku | None, Query()] = None, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[BackorderPublic]:
    """What is on backorder and for which jobs, in the order they were asked for."""
    after_id = decode_id_cursor(cursor)

    def work(session: Session) -> Page[BackorderPublic]:
        part_id = stock.part(session=session, sku=sku, field=("query", "sku")).id if sku else None
        rows = service.backorders(session=session, part_id=part_id, limit=limit + 1, after_id=after_id)
        _, skus = service.codes(session, set(), {line.part_id for line, _ in rows})
        more = len(rows) > limit
        return Page[BackorderPublic](
            items=[
                BackorderPublic(
                    id=line.id,
                    job_id=line.job_id,
                    sku=skus[line.part_id],
                    quantity=line.quantity,
                    eta=line.eta,
                    job_due_at=job.due_at,
                    requested_at=line.requested_at,
                )
                for line, job in rows[:limit]
            ],
            next_cursor=encode_id_cursor(rows[limit - 1][0].id) if more else None,
        )

    return await uow.run(work)


# --- a job's parts --------------------------------------------------------------------------


def _lines_public(session: Session, lines: list) -> list[JobPartPublic]:  # type: ignore[type-arg]
    locations, skus = service.codes(session, {line.location_id for line in lines}, {line.part_id for line in lines})
    return [JobPartPublic.model_validate(service.public_line(line, locations, skus)) for line in lines]


@job_parts_router.post("", status_code=201, response_model=JobPartPublic, responses=problem_responses(404, 409))
async def request_job_part(
    job_id: IdPath,
    body: PartRequestCreate,
    response: Response,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.technician, Role.dispatcher, Role.supervisor))],
) -> JobPartPublic:
    """Ask for a part: reserved at the technician's branch or the nearest location that has it,
    shipped from the central warehouse (`in_transit` with an `eta`), or `backordered` with an `eta`.
    Anything not yet at hand parks the job in `waiting_parts`; an ETA past the deadline flags a
    predicted breach at once."""

    def work(session: Session) -> JobPartPublic:
        line = service.request_parts(
            session=session, job_id=job_id, request=body, caller=caller, now=now, settings=settings
        )
        return _lines_public(session, [line])[0]

    line = await uow.run(work)
    response.headers["Location"] = f"/v1/jobs/{job_id}/parts/{line.id}"
    return line


@job_parts_router.get("", response_model=Page[JobPartPublic], responses=problem_responses(404))
async def list_job_parts(job_id: IdPath, uow: UnitOfWorkDep, caller: CallerDep) -> Page[JobPartPublic]:
    """Every part asked for on the job, with where it is and when it should arrive."""

    def work(session: Session) -> Page[JobPartPublic]:
        jobs.get(session=session, job_id=job_id, caller=caller)
        # A job asks for a handful of parts; the list is bounded by what one job can need.
        return Page[JobPartPublic](items=_lines_public(session, service.lines_of(session, job_id)), next_cursor=None)

    return await uow.run(work)


@job_parts_router.post("/{line_id}/release", response_model=JobPartPublic, responses=problem_responses(404, 409))
async def release_job_part(
    job_id: IdPath,
    line_id: IdPath,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.technician, Role.dispatcher, Role.supervisor))],
) -> JobPartPublic:
    """The part is not needed after all: its reservation, shipment or backorder is let go."""
    return await uow.run(
        lambda session: _lines_public(
            session,
            [
                service.release_part(
                    session=session, job_id=job_id, line_id=line_id, caller=caller, now=now, settings=settings
                )
            ],
        )[0]
    )


@job_parts_router.post("/{line_id}/return", response_model=JobPartPublic, responses=problem_responses(404, 409))
async def return_job_part(
    job_id: IdPath,
    line_id: IdPath,
    body: PartReturn,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Annotated[Caller, Depends(allow(Role.technician, Role.dispatcher, Role.warehouse))],
) -> JobPartPublic:
    """Unused parts from a completed job go back on the shelf they came from."""
    return await uow.run(
        lambda session: _lines_public(
            session,
            [
                service.return_part(
                    session=session,
                    job_id=job_id,
                    line_id=line_id,
                    quantity=body.quantity,
                    note=body.note,
                    caller=caller,
                    now=now,
                    settings=settings,
                )
            ],
        )[0]
    )
