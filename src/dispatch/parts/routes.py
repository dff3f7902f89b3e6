from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from dispatch import versions
from dispatch.auth.dependencies import CallerDep, allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import (
    IdPath,
    IdQuery,
    IfMatchHeader,
    NowDep,
    SettingsDep,
    UnitOfWorkDep,
)
from dispatch.errors import problem_responses
from dispatch.paging import CursorQuery, LimitQuery, Page
from dispatch.parts import public, service, stock
from dispatch.parts.models import ShipmentStatus
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
from dispatch.schemas import Category

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
    return await uow.run(
        lambda session: stock.list_locations(session=session, limit=limit, cursor=cursor).page(LocationPublic)
    )


@locations_router.get(
    "/{code}", response_model=LocationPublic, dependencies=[StockReaders], responses=problem_responses(404)
)
async def get_location(code: CodePath, uow: UnitOfWorkDep) -> LocationPublic:
    return await uow.run(lambda session: LocationPublic.model_validate(stock.location(session=session, code=code)))


def _with_etag(level: stock.Level, response: Response) -> StockPublic:
    response.headers["ETag"] = versions.etag(level.version)
    return public.stock(level)


@locations_router.get(
    "/{code}/stock", response_model=Page[StockPublic], dependencies=[StockReaders], responses=problem_responses(404)
)
async def list_location_stock(
    code: CodePath, uow: UnitOfWorkDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[StockPublic]:
    """Every part this location has a stock record for, by part."""
    return await uow.run(
        lambda session: stock.stock_at(session=session, code=code, limit=limit, cursor=cursor).page(
            StockPublic, public.stock
        )
    )


@locations_router.get(
    "/{code}/stock/{sku}",
    response_model=StockPublic,
    dependencies=[StockReaders],
    responses={**problem_responses(404), **versions.etag_header()},
)
async def get_stock(code: CodePath, sku: SkuPath, uow: UnitOfWorkDep, response: Response) -> StockPublic:
    """On hand, reserved for jobs, and available. The `ETag` is what a count sends as `If-Match`."""
    level = await uow.run(lambda session: stock.stock_level(session=session, code=code, sku=sku))
    return _with_etag(level, response)


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

    level = await uow.run(
        lambda session: service.set_stock(
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
    )
    return _with_etag(level, response)


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
    return await uow.run(
        lambda session: public.movements(
            *stock.movements(session=session, code=code, sku=sku, limit=limit, cursor=cursor)
        )
    )


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

    return await uow.run(
        lambda session: public.receipt(
            *service.receive_goods(
                session=session,
                code=code,
                sku=body.sku,
                quantity=body.quantity,
                note=body.note,
                caller=caller,
                now=now,
                settings=settings,
            )
        )
    )


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
    return await uow.run(
        lambda session: stock.list_parts(session=session, limit=limit, cursor=cursor, category=category).page(
            PartPublic
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
    return await uow.run(
        lambda session: public.availability(
            service.availability(session=session, sku=sku, caller=caller, job_id=job_id, lat=lat, lon=lon, limit=limit)
        )
    )


# --- shipments and backorders ------------------------------------------------------------------


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
        lambda session: public.shipment(
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
    return await uow.run(
        lambda session: public.shipment_page(
            session,
            service.shipments(
                session=session, sku=sku, to_location=to_location, status=status, limit=limit, cursor=cursor
            ),
        )
    )


@shipments_router.get(
    "/{shipment_id}", response_model=ShipmentPublic, dependencies=[StockReaders], responses=problem_responses(404)
)
async def get_shipment(shipment_id: IdPath, uow: UnitOfWorkDep) -> ShipmentPublic:
    return await uow.run(
        lambda session: public.shipment(session, service.shipment(session=session, shipment_id=shipment_id))
    )


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
        lambda session: public.shipment(
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
    return await uow.run(
        lambda session: public.backorders(
            session, service.backorders(session=session, sku=sku, limit=limit, cursor=cursor)
        )
    )


# --- a job's parts --------------------------------------------------------------------------


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
        return public.line(session, line)

    line = await uow.run(work)
    response.headers["Location"] = f"/v1/jobs/{job_id}/parts/{line.id}"
    return line


@job_parts_router.get("", response_model=Page[JobPartPublic], responses=problem_responses(404))
async def list_job_parts(job_id: IdPath, uow: UnitOfWorkDep, caller: CallerDep) -> Page[JobPartPublic]:
    """Every part asked for on the job, with where it is and when it should arrive."""

    return await uow.run(
        lambda session: Page[JobPartPublic](
            items=public.lines(session, service.job_lines(session=session, job_id=job_id, caller=caller))
        )
    )


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
        lambda session: public.line(
            session,
            service.release_part(
                session=session, job_id=job_id, line_id=line_id, caller=caller, now=now, settings=settings
            ),
        )
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
        lambda session: public.line(
            session,
            service.return_part(
                session=session,
                job_id=job_id,
                line_id=line_id,
                quantity=body.quantity,
                note=body.note,
                caller=caller,
                now=now,
                settings=settings,
            ),
        )
    )
