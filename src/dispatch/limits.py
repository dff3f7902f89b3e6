"""Resource limits (OWASP API4) and slow clients.

Bodies larger than the limit are refused with 413 before they are read into memory, whether
or not the client declared a length. A body is read whole *before* its request takes a slot,
against a deadline, so a client that sends headers and then nothing (or a trickle) holds no
slot and is cut with 408. Requests in flight are capped per process: the rest wait in the
event loop, holding no thread and no database connection, so a burst can never leave every
worker thread waiting for a connection (or for SQLite's writer) that only a thread could give
back. Requests without a key this process has just seen authenticate may hold only half the
slots, so anonymous traffic and key guessing cannot crowd out known callers. See
docs/decisions.md, "Slow and hostile clients".
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatch.auth import credentials
from dispatch.clock import Clock
from dispatch.errors import PROBLEM_MEDIA_TYPE, send_problem


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
        await send_problem(
            scope,
            send,
            status=413,
            code="too-large",
            title="Request too large",
            detail=f"the request body is larger than {max_bytes} bytes",
            headers=[(b"connection", b"close")],
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# Bodies up to this size wait for their slot in memory, larger ones in a temporary file: the
# same 64 KiB uvicorn itself buffers per connection before it stops reading.
SPOOL_IN_MEMORY = 64 * 1024
REPLAY_CHUNK = 64 * 1024


class ReadBodyFirst:
    """Reads the whole body before the request goes on (to wait for a slot, then to run).

    The body must keep coming: a silence of ``timeout`` seconds is a stall; and the whole body
    gets ``timeout`` seconds plus its size at ``min_rate`` bytes per second, which cuts a
    trickle (a byte now and then) that is never quite silent. Either way: 408 ``body-timeout``
    and the connection is closed. A disconnect before the end runs nothing at all.
    """

    def __init__(self, app: ASGIApp, *, timeout: float, min_rate: int, spool_budget: int) -> None:
        self.app = app
        self.timeout = timeout
        self.min_rate = min_rate
        # Bodies waiting for their end cost disk (or page cache): at most this much in all, and
        # half of it for requests whose key this process has not just seen authenticate, so
        # anonymous uploads cannot fill the disk or crowd out known technicians' photos.
        self.spool_budget = spool_budget
        self.spooled = 0
        self.spooled_unknown = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = anyio.current_time()
        declared = _content_length(scope)
        known = False
        reserved = 0
        if declared is not None and declared > SPOOL_IN_MEMORY:
            # A large body says how large it will be: reserve it all before reading a byte, so
            # a refusal comes while the client has sent only its headers.
            known = credentials.is_known(scope, credentials.key_hash_from_scope(scope))
            if not self._take(declared, known=known):
                await self._refuse_busy(scope, send)
                return
            reserved = declared
        try:
            await self._read_and_run(scope, receive, send, started, known=known, reserved=reserved)
        finally:
            self._give_back(reserved, known=known)

    async def _read_and_run(
        self, scope: Scope, receive: Receive, send: Send, started: float, *, known: bool, reserved: int
    ) -> None:
        first = await self._next(receive, started, 0)
        if first is None or first["type"] == "http.disconnect":
            await self._cut(scope, send, first)
            return
        if not first.get("more_body", False):  # the usual case: the whole body in one message
            await self.app(scope, _replay_one(first, receive), send)
            return
        if not reserved:  # no length declared (chunked): counted as it comes
            known = credentials.is_known(scope, credentials.key_hash_from_scope(scope))
        taken = 0
        try:
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
                # Writes of at most 64 KiB at a time to the page cache: cheaper in the event loop
                # than a worker thread per chunk (threads are what the slots ration).
                message = first
                while True:
                    chunk = message.get("body", b"")
                    if not reserved:
                        if not self._take(len(chunk), known=known):
                            await self._refuse_busy(scope, send)
                            return
                        taken += len(chunk)
                    spool.write(chunk)
                    if not message.get("more_body", False):
                        break
                    following = await self._next(receive, started, spool.tell())
                    if following is None or following["type"] == "http.disconnect":
                        await self._cut(scope, send, following)
                        return
                    message = following
                size = spool.tell()
                spool.seek(0)
                await self.app(scope, _replay_spool(spool, size, receive), send)
        finally:
            self._give_back(taken, known=known)

    def _take(self, n: int, *, known: bool) -> bool:
        if self.spooled + n > self.spool_budget:
            return False
        if not known:
            if self.spooled_unknown + n > self.spool_budget // 2:
                return False
            self.spooled_unknown += n
        self.spooled += n
        return True

    def _give_back(self, n: int, *, known: bool) -> None:
        self.spooled -= n
        if not known:
            self.spooled_unknown -= n

    async def _refuse_busy(self, scope: Scope, send: Send) -> None:
        await send_problem(
            scope,
            send,
            status=503,
            code="server-busy",
            title="Too many bodies in flight",
            detail="the server is receiving as many request bodies as it holds at once; retry shortly",
            headers=[(b"retry-after", b"5"), (b"connection", b"close")],
        )

    async def _next(self, receive: Receive, started: float, received: int) -> Message | None:
        """The next message, or None if the body is late (silent, or too slow on average)."""
        deadline = started + self.timeout + received / self.min_rate
        wait = min(self.timeout, deadline - anyio.current_time())
        if wait <= 0:
            return None
        with anyio.move_on_after(wait):
            return await receive()
        return None

    async def _cut(self, scope: Scope, send: Send, message: Message | None) -> None:
        if message is not None:  # the client went away: nobody to answer, nothing to run
            return
        await send_problem(
            scope,
            send,
            status=408,
            code="body-timeout",
            title="Request body timed out",
            detail=f"the request body stopped arriving: at most {self.timeout:g} s of silence, and in all "
            f"{self.timeout:g} s plus its size at {self.min_rate} bytes per second",
            headers=[(b"connection", b"close")],
        )


def _replay_one(message: Message, receive: Receive) -> Receive:
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()  # after the body: a disconnect, for whoever listens
        given = True
        return message

    return replay


def _replay_spool(spool: Any, size: int, receive: Receive) -> Receive:
    done = False

    async def replay() -> Message:
        nonlocal done
        if done:
            return await receive()
        chunk = spool.read(REPLAY_CHUNK)
        done = spool.tell() >= size
        return {"type": "http.request", "body": chunk, "more_body": not done}

    return replay


class Slots:
    """The process's request slots, in two lanes, and how long they have all been taken.

    A request whose key is in the key cache (it authenticated a moment ago) may take any slot;
    any other request (no key, an unknown key, a key not yet looked up) only one of half of
    them. Without a key cache there is nothing to tell callers apart by, and one lane.
    """

    def __init__(self, limit: int, *, clock: Clock, lanes: bool = True) -> None:
        self.limit = limit
        self.unknown_limit = max(1, limit // 2) if lanes else limit
        self.clock = clock
        self.in_use = 0
        self.full_since: datetime | None = None
        self._all: anyio.Semaphore | None = None
        self._unknown: anyio.Semaphore | None = None

    @asynccontextmanager
    async def hold(self, *, known: bool) -> AsyncIterator[None]:
        if self._all is None or self._unknown is None:  # created inside the server's event loop
            self._all = anyio.Semaphore(self.limit)
            self._unknown = anyio.Semaphore(self.unknown_limit)
        if known:
            async with self._all, self._taken():
                yield
        else:
            async with self._unknown, self._all, self._taken():
                yield

    @asynccontextmanager
    async def _taken(self) -> AsyncIterator[None]:
        self.in_use += 1
        if self.in_use == self.limit:
            self.full_since = self.clock.now()
        try:
            yield
        finally:
            self.in_use -= 1
            self.full_since = None

    def saturated_for(self, now: datetime) -> float:
        """Seconds for which every slot has been taken without a break (0 if one is free)."""
        if self.full_since is None:
            return 0.0
        return max(0.0, (now - self.full_since).total_seconds())


class ConcurrencyLimit:
    """At most ``slots.limit`` requests are handled at once; health checks always get through."""

    def __init__(
        self, app: ASGIApp, *, slots: Slots, exempt: frozenset[str] = frozenset({"/healthz", "/readyz"})
    ) -> None:
        self.app = app
        self.slots = slots
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        known = credentials.is_known(scope, credentials.key_hash_from_scope(scope))
        async with self.slots.hold(known=known):
            await self.app(scope, receive, send)


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """Every operation that takes a body may answer 408 when the body does not arrive."""
    for path, operations in spec.get("paths", {}).items():
        if not path.startswith("/v1"):
            continue
        for operation in operations.values():
            if "requestBody" in operation:
                operation.setdefault("responses", {}).setdefault(
                    "408",
                    {
                        "description": "The body stopped arriving (`body-timeout`); the connection is closed",
                        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    },
                )
    return spec
