"""One error hierarchy for the whole service, rendered as RFC 9457 problem details.

Services raise these; routes never build HTTP errors themselves. Each error has a stable
``code`` (also the last part of its ``type`` URI) that clients may rely on.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
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
