"""The ``Idempotency-Key`` header on every write (POST, PUT, PATCH, DELETE), for every route.

An ASGI middleware rather than a per-route dependency, so a route added later is covered
without anyone remembering to: it sits inside the body-size limit, reads the body, takes the
key for the caller, lets the request run, and keeps the answer (status, headers, body) to
replay. Requests without the header, or without a valid key (the route answers 401), pass
straight through.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatch.auth import credentials
from dispatch.auth import service as auth
from dispatch.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, DispatchError
from dispatch.idempotency import fingerprints, service

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HEADER = b"idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
MAX_KEY_LENGTH = 255
# Headers a replay repeats; the rest (date, server, length) belong to each answer.
_KEPT_HEADERS = {"content-type", "location", "etag"}
T = TypeVar("T")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        raw_key = _header(scope, HEADER)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
            await _problem(
                scope,
                send,
                422,
                "invalid-idempotency-key",
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            )
            return
        state = scope["app"].state
        caller = await _caller(state, scope)
        if caller is None:  # no key, or a bad one: the route answers 401
            await self.app(scope, receive, send)
            return

        body, complete = await _read_body(receive)
        if not complete:
            # The client went away in the middle of the body: half a request is not a request.
            # Nothing runs, no key is taken, and nobody is left to answer.
            return
        settings, database, clock = state.settings, state.database, state.clock
        content_type = (_header(scope, b"content-type") or b"").decode("latin-1")
        request = (scope["method"], scope["path"], scope.get("query_string", b""), content_type, body)
        # Parsing and hashing a photo takes a few milliseconds: in a thread, and outside the
        # SQLite writer's turn.
        fingerprint = await anyio.to_thread.run_sync(fingerprints.of, *request)
        decision = await _write(
            state,
            lambda: service.begin(
                database=database,
                owner=caller.actor,
                key=key,
                method=scope["method"],
                path=scope["path"],
                fingerprint=fingerprint,
                also_matches=lambda: fingerprints.raw(*request),
                now=clock.now(),
                keep_for=timedelta(hours=settings.idempotency_key_hours),
                lock_for=timedelta(seconds=settings.idempotency_lock_seconds),
            ),
        )
        if decision.outcome == "mismatch":
            await _problem(
                scope,
                send,
                422,
                "idempotency-key-reused",
                "this Idempotency-Key was sent before with a different request; use a new key",
            )
            return
        if decision.outcome == "in_flight":
            await _problem(
                scope,
                send,
                409,
                "idempotency-key-in-use",
                "a request with this Idempotency-Key is still being handled; retry shortly",
                headers=[(b"retry-after", b"1")],
            )
            return
        if decision.outcome == "replay":
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in decision.headers or []]
            await _send_response(
                send, decision.status or 200, [*headers, (REPLAYED_HEADER.encode(), b"true")], decision.body or b""
            )
            return

        # We hold the key: run the request on the body we read, and keep what it answers.
        replayed_body = False

        async def replay_receive() -> Message:
            nonlocal replayed_body
            if not replayed_body:
                replayed_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replay_receive, capture)
        finally:
            kept = [
                [k.decode("latin-1"), v.decode("latin-1")]
                for k, v in headers
                if k.decode("latin-1").lower() in _KEPT_HEADERS
            ]
            answer = b"".join(chunks)
            await _write(
                state,
                lambda: service.finish(
                    database=database,
                    row_id=decision.row_id,
                    status=status,
                    headers=kept,
                    body=answer,  # type: ignore[arg-type]
                    now=clock.now(),
                ),
            )
        await _send_response(send, status, [(k, v) for k, v in headers if k.lower() != b"content-length"], answer)


async def _caller(state: Any, scope: Scope) -> auth.Caller | None:
    secret = credentials.from_scope(scope)
    if secret is None:
        return None
    keys: auth.RecentKeys = state.recent_keys
    key_hash = auth.hash_key(secret)
    caller = keys.get(key_hash)
    if caller is not None:
        return caller

    def look_up() -> auth.Caller | None:
        with state.database.transaction(write=False) as session:
            try:
                return auth.authenticate(session=session, key_hash=key_hash, now=state.clock.now())
            except DispatchError:
                return None

    caller = await anyio.to_thread.run_sync(look_up)
    if caller is not None:
        keys.put(key_hash, caller)
    return caller


async def _write(state: Any, work: Callable[[], T]) -> T:
    """A short write of our own; on SQLite it waits its turn with the requests' writes."""
    if state.database.dialect == "sqlite":
        if getattr(state, "sqlite_writer", None) is None:
            state.sqlite_writer = anyio.Lock()
        async with state.sqlite_writer:
            return await anyio.to_thread.run_sync(work)
    return await anyio.to_thread.run_sync(work)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and whether it all came (False: the client disconnected first)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


async def _send_response(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(
    scope: Scope, send: Send, status: int, code: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + code,
            "title": "Conflict" if status == 409 else "The request is not valid",
            "status": status,
            "detail": detail,
            "code": code,
            "instance": scope.get("path", ""),
        }
    ).encode()
    await _send_response(send, status, [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), *(headers or [])], payload)


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """Add the header to every write operation of the spec, and the answers it brings."""
    from dispatch.errors import problem_responses

    problems = problem_responses(409, 422)
    for path, operations in spec.get("paths", {}).items():
        if not path.startswith("/v1"):
            continue
        for method, operation in operations.items():
            if method.upper() not in WRITE_METHODS:
                continue
            params = operation.setdefault("parameters", [])
            if not any(p.get("name") == "Idempotency-Key" for p in params):
                params.append(
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "Makes a retry safe: the first answer is replayed for the same key and "
                        "request; the same key with a different request is refused (422).",
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_KEY_LENGTH,
                            "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$",
                        },
                    }
                )
            responses = operation.setdefault("responses", {})
            for status, entry in problems.items():
                if str(status) not in responses:
                    responses[str(status)] = {
                        "description": entry["description"],
                        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    }
    return spec
