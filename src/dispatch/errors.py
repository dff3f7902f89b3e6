"""One error hierarchy for the whole service, rendered as RFC 9457 problem details.

Services raise these; routes never build HTTP errors themselves. Each error has a stable
``code`` (also the last part of its ``type`` URI) that clients may rely on.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "/problems/"


class DispatchError(Exception):
    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class NotFound(DispatchError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(DispatchError):
    status, code, title = 409, "conflict", "Conflict"


class Unprocessable(DispatchError):
    status, code, title = 422, "validation-failed", "The request is not valid"


class PreconditionFailed(DispatchError):
    """An ``If-Match`` that no longer holds: someone else changed the resource since the caller read it."""

    status, code, title = 412, "precondition-failed", "The resource has changed"


class Unauthorized(DispatchError):
    status, code, title = 401, "unauthorized", "Authentication required"


class Forbidden(DispatchError):
    status, code, title = 403, "forbidden", "Not allowed"


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is answered."""

    type: str = Field(examples=["/problems/not-found"])
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldError] | None = None

    model_config = {"extra": "allow"}


def problem_response(
    request: Request, *, status: int, code: str, title: str, detail: str, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry for routes, so the spec lists every problem they answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            "description": _STATUS_TITLES.get(status, "Problem"),
        }
    return out


_STATUS_TITLES = {
    400: "Bad request",
    401: "Missing or unknown API key",
    403: "The key's role may not do this",
    404: "Not found, or not visible to this key",
    409: "Conflicts with the current state",
    412: "Precondition failed",
    408: "The body did not arrive in time",
    413: "Too large",
    422: "The request is not valid",
    429: "Too many requests",
    503: "Unavailable for now (`database-unavailable`, or a dependency named by the code); retry later",
}

_HTTP_CODES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


# --- the problem types: what each code means, served at its `type` URI ----------------------


@dataclass(frozen=True)
class ProblemType:
    status: int  # the usual status (a few codes come with more than one)
    title: str
    help: str  # what happened, and what the client can do about it


def _t(status: int, title: str, help: str) -> ProblemType:
    return ProblemType(status, title, help)


# Every stable code a problem (or an intake warning) can carry. `/problems/{code}` serves a short
# page from here; tests/test_problem_types.py fails when the code raises a code not listed.
PROBLEM_TYPES: dict[str, ProblemType] = {
    # Requests in general
    "bad-request": _t(
        400,
        "Bad request",
        "The request could not be read: malformed JSON, a missing body, or a header that makes no sense. Fix the request; retrying it unchanged will fail again.",
    ),
    "validation-failed": _t(
        422,
        "The request is not valid",
        "A field is missing, of the wrong type, out of range, or unknown (request bodies refuse fields they do not know, so a typo is not silently dropped). `errors` lists each field's location and what is wrong with it.",
    ),
    "not-found": _t(
        404,
        "Not found",
        "No such resource, or one this key may not see: ids of other outlets' or technicians' records are answered 404, never 403, so they cannot be probed.",
    ),
    "method-not-allowed": _t(
        405,
        "Method not allowed",
        "The path exists but not with this method; the `Allow` header lists the ones it takes.",
    ),
    "not-acceptable": _t(
        406, "Not acceptable", "The `Accept` header asks for a format this resource cannot answer in."
    ),
    "unsupported-media-type": _t(
        415,
        "Unsupported media type",
        "The body's `Content-Type` is not one this route reads (JSON, or multipart for photo uploads).",
    ),
    "too-large": _t(
        413,
        "Request too large",
        "The body is larger than the service takes (1 MiB for JSON, `DISPATCH_PHOTO_MAX_BYTES` for a photo). `max_bytes` says the limit.",
    ),
    "http-error": _t(
        400, "HTTP error", "An HTTP-level refusal without a more specific code; `status` and `detail` say which."
    ),
    "conflict": _t(
        409, "Conflict", "The request conflicts with the current state of the resource; read it again and decide."
    ),
    "conflicts-with-existing-data": _t(
        409,
        "Conflict",
        "Another request wrote the same unique data at the same moment. Read again and retry if it still makes sense.",
    ),
    "concurrent-update": _t(
        409,
        "Raced with another request",
        "The database refused the change because another request changed the same rows at the same time. Retrying the same request is safe.",
    ),
    "precondition-failed": _t(
        412,
        "The resource has changed",
        "The `If-Match` you sent no longer matches: someone changed the resource after you read it. `current_etag` is the version now; read it, reapply your change, and send it with the new tag.",
    ),
    "internal-error": _t(
        500,
        "Internal server error",
        "The server failed; it has been logged. Retry later; if it persists, tell the operators the time and the `instance`.",
    ),
    "rate-limited": _t(
        429,
        "Too many requests",
        "This key made more requests than `DISPATCH_RATE_LIMIT_PER_SECOND` allows. Wait `Retry-After` seconds.",
    ),
    "body-timeout": _t(
        408,
        "Request body timed out",
        "The body stopped arriving: more than `DISPATCH_BODY_TIMEOUT_SECONDS` of silence, or slower on average than `DISPATCH_BODY_MIN_BYTES_PER_SECOND`. Nothing was run; send the request again on a better connection.",
    ),
    "server-busy": _t(
        503,
        "Too many bodies in flight",
        "The server is receiving as many request bodies as it holds at once (`DISPATCH_BODY_SPOOL_MAX_BYTES`). Nothing was run; retry after `Retry-After` seconds.",
    ),
    "database-unavailable": _t(
        503,
        "Database unavailable",
        "The database cannot be reached right now. Nothing was changed; retry after `Retry-After` seconds. `/readyz` says the same to load balancers.",
    ),
    "unknown-department": _t(
        422,
        "Unknown department",
        "The department named is not an active one. `GET /v1/departments` lists them.",
    ),
    "department-not-found": _t(404, "Department not found", "No department has this code."),
    "stage-would-be-unowned": _t(
        409,
        "A stage would be left without an owner",
        "Every stage of a job is owned by exactly one department. Give the stage to another department first (PUT that department with it in `stages`).",
    ),
    "department-owns-stages": _t(
        409,
        "The department owns stages",
        "A department that owns stages cannot be deactivated; give its stages to another department first.",
    ),
    "stage-not-owned": _t(
        404, "Stage without owner", "The stage has no owning department (a seeded row was deleted by hand)."
    ),
    "unknown-cause": _t(
        422,
        "Unknown cause",
        "The cause code is not an active one in the catalogue. `GET /v1/causes` lists them; an admin adds more.",
    ),
    "too-many-auth-failures": _t(
        429,
        "Too many failed authentications",
        "This client address sent more unknown or missing keys than `DISPATCH_AUTH_FAILURES_PER_MINUTE` allows. Wait `Retry-After` seconds; a valid key from the same address still works.",
    ),
    "last-admin-key": _t(
        409,
        "The last admin key",
        "This is the last admin key that does not expire: revoking it would lock every operator out. Create another admin key first.",
    ),
    "admin-key-refused": _t(
        409,
        "The configured admin key is refused",
        "`DISPATCH_ADMIN_KEY` names a key that was revoked or has expired (after a rotation). Set it to the successor's secret, or to a new one to create a fresh admin key.",
    ),
    "one-file-only": _t(
        422,
        "One file per upload",
        "A photo upload carries exactly one `file` part; send each photo in its own request.",
    ),
    "invalid-cursor": _t(
        422,
        "Invalid cursor",
        "`cursor` is not one this API gave out (or was given out for another ordering). Start again from the first page.",
    ),
    "invalid-paging": _t(
        422,
        "Invalid paging",
        "This list cannot be paged that way (the CSV form of the metrics is never paged: leave out `limit` and `cursor`).",
    ),
    "invalid-period": _t(
        422,
        "Invalid period",
        "`since` must come before `until`, and the period must be within the limits the metrics allow.",
    ),
    "invalid-position": _t(422, "Invalid position", "Give a job, or `lat` and `lon` together, or nothing."),
    "timestamp-in-future": _t(
        422,
        "Timestamp in the future",
        "A device time is further ahead of the server's clock than `DISPATCH_CLOCK_SKEW_SECONDS` allows. Check the device's clock.",
    ),
    "timestamp-too-old": _t(
        422, "Timestamp too old", "`reported_at` is longer ago than `DISPATCH_REPORTED_AT_MAX_AGE_DAYS` allows."
    ),
    "timestamp-out-of-order": _t(
        422,
        "Timestamp out of order",
        "A device time goes back before what already happened to the job (its report, its assignment or its last status change). `not_before` says the earliest allowed.",
    ),
    "date-in-future": _t(422, "Date in the future", "A date that cannot be in the future (a purchase date) is."),
    # Keys and roles
    "missing-api-key": _t(401, "API key required", "Send `Authorization: Bearer <key>`."),
    "invalid-api-key": _t(
        401,
        "Unknown API key",
        "The key is unknown, revoked or expired after a rotation. Ask an administrator for a new one.",
    ),
    "unauthorized": _t(401, "Authentication required", "Send a valid API key as `Authorization: Bearer <key>`."),
    "forbidden": _t(403, "Not allowed", "This key may not do this."),
    "role-not-allowed": _t(
        403,
        "Role not allowed",
        "The key's role may not use this route (for example a technician dispatching a job). Use a key of a role that may.",
    ),
    "api-key-not-found": _t(404, "API key not found", "No such key, or not one this caller may manage."),
    "api-key-inactive": _t(409, "API key inactive", "The key is revoked or expired: it cannot be rotated."),
    "api-key-already-rotated": _t(
        409, "API key already rotated", "A key can be rotated once; rotate its successor instead."
    ),
    "key-binding-required": _t(
        422, "Key needs a binding", "Technician keys need `technician_id`, outlet keys `outlet_id`."
    ),
    "key-binding-invalid": _t(
        422,
        "Key cannot carry that binding",
        "Only technician keys carry `technician_id` and only outlet keys `outlet_id`.",
    ),
    # Idempotency
    "invalid-idempotency-key": _t(
        400,
        "Invalid Idempotency-Key",
        "The `Idempotency-Key` header must be 1 to 255 printable ASCII characters; a UUID is a good choice.",
    ),
    "idempotency-key-reused": _t(
        422,
        "Idempotency-Key reused",
        "This key was sent before with a different request (method, path, query or body). Nothing was done: use a new key for a new operation.",
    ),
    "idempotency-key-in-use": _t(
        409,
        "Idempotency-Key in use",
        "The first request with this key is still being handled. Retry with the same key after `Retry-After` seconds.",
    ),
    # Jobs
    "job-not-found": _t(
        404,
        "Job not found",
        "No such job, or not one this key may see (an outlet sees its own jobs, a technician the jobs assigned to them).",
    ),
    "duplicate-external-ref": _t(
        409,
        "Order number already used",
        "A job with this `external_ref` exists for your outlet; `job_id` names it. Read it rather than sending the request again.",
    ),
    "job-closed": _t(
        409, "Job finished", "The job is completed, cancelled or closed; this change no longer applies to it."
    ),
    "illegal-transition": _t(
        409,
        "Status change not allowed",
        "The job cannot move from its current status to the one asked for. `current_status` and `allowed` say where it is and where it can go.",
    ),
    "status-not-settable": _t(
        422,
        "Status not settable",
        "This caller may not set that status (technicians report `en_route`, `on_site`, `completed`, `unable`; dispatchers may also cancel).",
    ),
    "unknown-category": _t(
        201,
        "Unknown product category (a warning)",
        "Not an error: the job was accepted, but no active technician has its product category, so it will not be dispatched by itself. Check the category's spelling; a dispatcher may assign someone by hand.",
    ),
    # Dispatch
    "no-technician-available": _t(
        409,
        "No technician available",
        "Nobody can be sent now. `reason` says why (`no_skill`, `none_on_duty`, `all_at_capacity`, `none_on_shift`, `none_in_range`, `all_gave_back`) and `candidates` lists the nearest technicians with why each was passed over. The job keeps waiting; try later or assign by hand.",
    ),
    "job-not-dispatchable": _t(
        409,
        "Job not dispatchable",
        "Only jobs that are new, given back (`unable`) or ready after parts are dispatched.",
    ),
    "job-not-assignable": _t(
        409,
        "Job not assignable",
        "A job can be assigned by hand while new, unable, ready or assigned, not once the technician is on the way.",
    ),
    "job-needs-location": _t(
        409,
        "Job has no location",
        "The customer's address could not be placed. Set it with `POST /v1/jobs/{id}/location` first.",
    ),
    "already-assigned": _t(409, "Already assigned", "The job is already assigned to that technician."),
    "technician-not-found": _t(404, "Technician not found", "No such technician, or not this technician's own record."),
    "technician-inactive": _t(
        409, "Technician blocked", "The technician is blocked (`active: false`) and cannot be given jobs."
    ),
    "technician-at-capacity": _t(
        409,
        "Technician at capacity",
        "The technician holds as many open jobs as their capacity allows; assigning by hand never overbooks.",
    ),
    "dispatch-contention": _t(
        409, "Too much contention", "Too many dispatches competed for the same technicians at once. Retry."
    ),
    # SLA
    "sla-policy-not-found": _t(404, "SLA policy not found", "The policies are `standard`, `express` and `emergency`."),
    "invalid-policy": _t(
        422,
        "Invalid SLA policy",
        "The targets contradict each other (an arrival target after the completion target, a warning ratio outside 0 to 1).",
    ),
    "pause-not-allowed": _t(
        422,
        "Pause not allowed",
        "The job's policy does not let the clock stop for that reason; `allowed` lists the reasons it does.",
    ),
    "already-paused": _t(409, "Already paused", "The job's SLA clock is already stopped."),
    "not-paused": _t(409, "Not paused", "The job's SLA clock is running; there is nothing to resume."),
    "escalation-not-found": _t(404, "Escalation not found", "No such escalation."),
    "already-acknowledged": _t(409, "Already acknowledged", "Someone acknowledged this escalation already."),
    # Parts and stock
    "part-not-found": _t(404, "Part not found", "No part with that SKU in the catalogue."),
    "unknown-sku": _t(422, "Unknown SKU", "The SKU in the body is not in the catalogue."),
    "duplicate-sku": _t(409, "SKU exists", "A part with this SKU is in the catalogue already."),
    "location-not-found": _t(404, "Location not found", "No stock location with that code."),
    "unknown-location": _t(422, "Unknown location", "The location code in the body or query is not a stock location."),
    "duplicate-location": _t(409, "Location exists", "A location with this code exists already."),
    "central-exists": _t(409, "Central warehouse exists", "There is one central warehouse; add branches instead."),
    "same-location": _t(422, "Same location", "A shipment goes from one location to another."),
    "insufficient-stock": _t(409, "Not enough stock", "Not enough of the part is free at that location."),
    "below-reserved": _t(
        409,
        "Below what is reserved",
        "A stock count cannot go below what is reserved for jobs; release or use those first.",
    ),
    "eta-in-past": _t(422, "ETA in the past", "A shipment's ETA must be in the future."),
    "shipment-not-found": _t(404, "Shipment not found", "No such shipment."),
    "shipment-received": _t(409, "Shipment received", "The shipment was received already."),
    "part-line-not-found": _t(404, "Part line not found", "The job has no such part line."),
    "part-line-closed": _t(
        409, "Part line closed", "Only open part requests (reserved, shipped or backordered) can be released."
    ),
    "part-line-not-consumed": _t(
        409, "Part not used", "Only parts used on a completed job can be returned to the shelf."
    ),
    "return-too-many": _t(422, "Returning too many", "More than what is left of the line to return."),
    # Proof of work
    "photo-not-found": _t(404, "Photo not found", "No such photo on this job."),
    "photo-file-missing": _t(404, "Photo file missing", "The photo's record exists but its file is gone from storage."),
    "photo-storage-failed": _t(
        503,
        "Photo storage unavailable",
        "The photo could not be stored. Retry the upload (with the same `Idempotency-Key`).",
    ),
    "not-an-image": _t(
        422, "Not an image", "The upload is not a JPEG, PNG, WebP or HEIF image the service can decode."
    ),
    "too-many-pixels": _t(422, "Image too large", "The image has more pixels than `DISPATCH_PHOTO_MAX_PIXELS` allows."),
    "no-visit": _t(409, "No visit yet", "Photos, sign-offs and callbacks belong to a visit; this job has had none."),
    "not-signable": _t(409, "Not signable", "The customer signs off on site or once the job is completed."),
    "already-signed-off": _t(409, "Already signed off", "This visit has its sign-off."),
    "photo-not-of-job": _t(422, "Photo of another job", "The sign-off's photo must be one of this job's photos."),
    "photo-of-another-visit": _t(422, "Photo of another visit", "The sign-off's photo must be taken on this visit."),
    "not-completed": _t(409, "Job not completed", "Callbacks and compliance reviews come once the job is completed."),
    "unreached-with-answers": _t(
        422,
        "Unreached, with answers",
        "A customer who was not reached gave no answers: leave out `fixed` and `satisfaction`.",
    ),
    "fixed-required": _t(
        422, "Say whether it is fixed", "A call that reached the customer must say `fixed` (true or false)."
    ),
    "reason-required": _t(422, "Reason required", "A failed review needs a reason."),
    "not-returnable": _t(409, "No return visit", "Only a completed or closed job gets a return visit."),
    # Outlets and webhooks
    "outlet-not-found": _t(404, "Outlet not found", "No such outlet."),
    "duplicate-outlet-code": _t(409, "Outlet code exists", "An outlet with this code exists already."),
    "webhook-not-found": _t(404, "Subscription not found", "No such webhook subscription of yours."),
    "delivery-not-found": _t(404, "Delivery not found", "No such delivery of this subscription."),
    "webhook-url-not-allowed": _t(
        422,
        "URL not allowed",
        "Webhook URLs may not point at loopback, private, link-local or otherwise internal addresses.",
    ),
}


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    table = getattr(app.state, "path_methods", None)
    if table is None:
        table = []
        for template, operations in app.openapi()["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$")
            table.append((pattern, sorted(m.upper() for m in operations)))
        app.state.path_methods = table
    for pattern, methods in table:
        if pattern.match(path):
            return methods
    return []


def _jsonable_loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, (str, int)) else str(part) for part in loc]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(DispatchError)
    async def _dispatch_error(request: Request, exc: DispatchError) -> JSONResponse:
        return problem_response(
            request, status=exc.status, code=exc.code, title=exc.title, detail=exc.detail, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": _jsonable_loc(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
            for err in exc.errors()
        ]
        first = errors[0] if errors else None
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}" if first else "The request is not valid"
        return problem_response(
            request,
            status=422,
            code="validation-failed",
            title="The request is not valid",
            detail=detail,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_CODES.get(exc.status_code, ("http-error", "HTTP error"))
        response = problem_response(request, status=exc.status_code, code=code, title=title, detail=str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:
            # The router only knows the one route it matched; list every method of the path.
            allowed = _allowed_methods(app, request.url.path)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        # A uniqueness race the service's own checks could not see (two requests at once).
        log.info("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(
            request,
            status=409,
            code="conflicts-with-existing-data",
            title="Conflict",
            detail="the request conflicts with data written at the same time; read it again and retry",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            status=500,
            code="internal-error",
            title="Internal server error",
            detail="The server failed to handle this request; it has been logged.",
        )


async def send_problem(
    scope: Scope,
    send: Send,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A problem answered from ASGI middleware, where there is no FastAPI handler to raise to."""
    payload = json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + code,
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
            "instance": scope.get("path", ""),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# The database cannot be reached, refuses connections, is locked past the busy timeout, or the
# pool has no connection to give within its timeout: a client should wait and retry.
DATABASE_OUTAGES = (OperationalError, PoolTimeout, DisconnectionError)
DATABASE_RETRY_AFTER_SECONDS = 5
# SQLite says "OperationalError" for a missing table too; only these primary result codes
# mean the file cannot be used just now. (PostgreSQL reports SQL mistakes as other classes.)
_SQLITE_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
    }
)


def is_database_outage(exc: BaseException) -> bool:
    if isinstance(exc, (PoolTimeout, DisconnectionError)):
        return True
    if not isinstance(exc, OperationalError):
        return False
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is None or code & 0xFF in _SQLITE_UNAVAILABLE


class DatabaseOutage:
    """503 ``database-unavailable`` with Retry-After instead of a 500, wherever the outage
    shows: in a route, in the key check, or in a middleware (Idempotency-Key) that has no
    FastAPI handler around it. The outermost of our middlewares, so it sees them all."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except DATABASE_OUTAGES as exc:
            if started or not is_database_outage(exc):
                raise
            # One line, not a traceback per request for as long as the outage lasts.
            log.warning("database unavailable on %s %s: %s", scope.get("method"), scope.get("path"), exc)
            await send_problem(
                scope,
                send,
                status=503,
                code="database-unavailable",
                title="Service unavailable",
                detail="the database cannot be reached just now; retry in a few seconds (with the same Idempotency-Key, a write is safe to retry)",
                headers=[(b"retry-after", str(DATABASE_RETRY_AFTER_SECONDS).encode())],
            )


def document_outages(spec: dict[str, Any]) -> dict[str, Any]:
    """Every operation that reads or writes data may answer 503 with Retry-After."""
    for path, operations in spec.get("paths", {}).items():
        if not path.startswith("/v1"):
            continue
        for operation in operations.values():
            # Routes that name a 503 of their own (photo storage) keep it, with the header added.
            response = operation.setdefault("responses", {}).setdefault(
                "503",
                {
                    "description": _STATUS_TITLES[503],
                    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                },
            )
            response.setdefault("headers", {})["Retry-After"] = {
                "schema": {"type": "integer", "minimum": 1},
                "description": "Seconds to wait",
            }
    return spec
