"""The FastAPI application: wiring only. Rules live in each domain's service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute

from dispatch import __version__
from dispatch.assignment.routes import router as assignment_router
from dispatch.auth import service as auth
from dispatch.auth.routes import router as api_keys_router
from dispatch.clock import Clock, SystemClock
from dispatch.closeout.routes import callbacks_router
from dispatch.closeout.routes import router as closeout_router
from dispatch.config import Settings
from dispatch.database.core import Database, make_engine
from dispatch.departments.routes import router as departments_router
from dispatch.errors import DatabaseOutage, document_outages, install_problem_handlers
from dispatch.health.routes import router as health_router
from dispatch.idempotency.middleware import IdempotencyMiddleware
from dispatch.idempotency.middleware import document as document_idempotency
from dispatch.jobs.routes import router as jobs_router
from dispatch.limits import BodySizeLimit, ConcurrencyLimit, ReadBodyFirst, Slots
from dispatch.limits import document as document_body_timeout
from dispatch.metrics.routes import router as metrics_router
from dispatch.outlets.routes import router as outlets_router
from dispatch.parts.routes import (
    backorders_router,
    job_parts_router,
    locations_router,
    parts_router,
    shipments_router,
)
from dispatch.photos.routes import MULTIPART_ALLOWANCE, UPLOAD_PATH
from dispatch.photos.routes import router as photos_router
from dispatch.ratelimit import RateLimit
from dispatch.ratelimit import document as document_rate_limit
from dispatch.sla import watcher
from dispatch.sla.routes import job_sla_router
from dispatch.sla.routes import router as sla_router
from dispatch.technicians.routes import router as technicians_router
from dispatch.visits.routes import router as visits_router
from dispatch.web import routes as web
from dispatch.webhooks.routes import router as webhooks_router
from dispatch.webhooks.worker import run_in_background as webhook_worker

log = logging.getLogger(__name__)

DESCRIPTION = """\
Field repair dispatch and SLA service. Takes repair requests from dispatchers and outlets,
sends the nearest available technician, and keeps the 24-hour promise visible on every job.

Authenticate with `Authorization: Bearer <api key>`. Errors are RFC 9457 problem details
(`application/problem+json`) with a stable `code`.
"""


def _operation_id(route: APIRoute) -> str:
    # Stable ids for generated clients: the route function's name.
    return route.name


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, database: Database | None = None
) -> FastAPI:
    settings = settings or Settings()
    clock = clock or SystemClock()
    database = database or Database(make_engine(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Enough worker threads that every admitted request can always get one.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.max_concurrent_requests + 8
        if settings.admin_key:
            with database.transaction() as session:
                auth.ensure_admin_key(session=session, secret=settings.admin_key, now=clock.now())
        stop = asyncio.Event()
        # The embedded default watches SLAs and delivers webhooks in the app; production runs
        # `dispatch worker` processes and turns these off.
        watching = (
            asyncio.create_task(watcher.watch(database, clock.now, settings, stop))
            if settings.sla_watcher_in_app
            else None
        )
        async with webhook_worker(database=database, settings=settings, clock=clock):
            yield
        if watching is not None:
            stop.set()
            await watching
        database.dispose()

    app = FastAPI(
        title="Field repair dispatch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.database = database
    app.state.recent_keys = auth.RecentKeys(ttl=settings.auth_cache_seconds)
    app.state.slots = Slots(settings.max_concurrent_requests, clock=clock, lanes=settings.auth_cache_seconds > 0)
    install_problem_handlers(app)
    # Ours, innermost first (each add wraps the ones before it):
    app.add_middleware(IdempotencyMiddleware)  # sees whole bodies, within the size limit
    app.add_middleware(ConcurrencyLimit, slots=app.state.slots)
    # The body is read before the request waits for a slot: waiting for a body holds none.
    app.add_middleware(
        ReadBodyFirst,
        timeout=settings.body_timeout_seconds,
        min_rate=settings.body_min_bytes_per_second,
        spool_budget=settings.body_spool_max_bytes,
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        larger={("POST", UPLOAD_PATH): settings.photo_max_bytes + MULTIPART_ALLOWANCE},
    )
    # A key over its rate, or an address out of tries, is refused before its body is read.
    app.add_middleware(
        RateLimit,
        rate=settings.rate_limit_per_second,
        burst=settings.rate_limit_burst,
        failures_per_minute=settings.auth_failures_per_minute,
        failures_burst=settings.auth_failures_burst,
    )
    app.add_middleware(DatabaseOutage)  # outermost: a 503 wherever the database fails
    for router in (
        health_router,
        api_keys_router,
        outlets_router,
        technicians_router,
        jobs_router,
        assignment_router,
        job_parts_router,
        locations_router,
        parts_router,
        shipments_router,
        backorders_router,
        sla_router,
        job_sla_router,
        metrics_router,
        visits_router,
        photos_router,
        closeout_router,
        callbacks_router,
        webhooks_router,
        departments_router,
    ):
        app.include_router(router)
    web.mount(app)

    _add_to_openapi(
        app,
        lambda spec: document_outages(document_body_timeout(document_rate_limit(document_idempotency(spec)))),
    )
    return app


def _add_to_openapi(app: FastAPI, document) -> None:  # type: ignore[no-untyped-def]
    """Let a middleware describe itself in the spec (headers and answers the routes don't show)."""
    build = app.openapi

    def openapi() -> dict:  # type: ignore[type-arg]
        if app.openapi_schema is None:
            app.openapi_schema = document(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
