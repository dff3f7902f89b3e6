"""Resource limits (OWASP API4).

Bodies larger than the limit are refused with 413 before they are read into memory, whether
or not the client declared a length. Requests in flight are capped per process: the rest wait
in the event loop, holding no thread and no database connection, so a burst can never leave
every worker thread waiting for a connection (or for SQLite's writer) that only a thread could
give back.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatch.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE


class BodyTooLarge(HTTPException):
    """Raised while the body streams in. An HTTPException, so the framework's own body parsing
    passes it through to the problem-details handler instead of turning it into a 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodySizeLimit:
    """``larger`` gives (method, path pattern) -> limit for the few routes that take files."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, larger: dict[tuple[str, str], int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = [(method, re.compile(pattern), limit) for (method, pattern), limit in (larger or {}).items()]

    def _limit(self, scope: Scope) -> int:
        for method, pattern, limit in self.larger:
            if scope.get("method") == method and pattern.fullmatch(scope.get("path", "")):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > max_bytes:
            await self._refuse(scope, send, max_bytes)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send, max_bytes)

    async def _refuse(self, scope: Scope, send: Send, max_bytes: int) -> None:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + "too-large",
            "title": "Request too large",
            "status": 413,
            "detail": f"the request body is larger than {max_bytes} bytes",
            "code": "too-large",
            "instance": scope.get("path", ""),
        }
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class ConcurrencyLimit:
    """At most ``limit`` requests are handled at once; health checks always get through."""

    def __init__(
        self, app: ASGIApp, *, limit: int, exempt: frozenset[str] = frozenset({"/healthz", "/readyz"})
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self._semaphore: anyio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:  # created inside the server's event loop
            self._semaphore = anyio.Semaphore(self.limit)
        async with self._semaphore:
            await self.app(scope, receive, send)
