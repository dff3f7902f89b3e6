"""Request rate per API key, and failed authentication per client address (OWASP API4): token
buckets, answered with 429 and ``Retry-After`` when empty.

A key's bucket is keyed by the hash of the key as authentication reads it
(``auth.credentials``), so `bearer K`, `BEARER K` and `Bearer  K` are one bucket. Only keys
that authenticated get a bucket: a key this process knows (the key cache) is charged before
it runs, one seen for the first time after it authenticated. Every other request (no key, a
wrong one) is charged to its client address when it ends in 401, and refused before it runs
(before any key lookup) once that address is out of tries; an IPv6 client counts by its /64,
which one subscriber usually holds whole.

Buckets live in the process's memory: with several server processes each has its own, so a
key may get up to N times the rate across N processes. Good enough to stop a runaway
integration or a key guesser; a limit that must be exact belongs in a shared store or the
load balancer. Time is the service's injectable clock, so tests refill a bucket by moving it.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatch.auth import credentials
from dispatch.errors import PROBLEM_MEDIA_TYPE, send_problem

# Where new keys are counted while the table is full of buckets still refilling.
OVERFLOW = "\0overflow"


class TokenBuckets:
    """Buckets in least-recently-used order. A full bucket is the same as no bucket, so when
    the table is full the idle (full again) buckets go, oldest first; a live one is never
    dropped, which would hand its key a fresh burst. If every bucket is live, newcomers share
    one overflow bucket until some bucket fills up again (at most burst / rate seconds)."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> float:
        """Take a token: 0.0 if there was one, else seconds until there will be."""
        with self._lock:
            key = self._room_for(key, now)
            tokens = self._tokens(key, now)
            if tokens >= 1.0:
                self._set(key, tokens - 1.0, now)
                return 0.0
            self._set(key, tokens, now)
            return (1.0 - tokens) / self.rate

    def wait(self, key: str, now: float) -> float:
        """Seconds until the key has a token, taking none (0.0: it has one now)."""
        with self._lock:
            tokens = self._tokens(self._room_for(key, now), now)
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _tokens(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(self.burst)
        tokens, at = bucket
        return min(float(self.burst), tokens + max(0.0, now - at) * self.rate)

    def _set(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)

    def _room_for(self, key: str, now: float) -> str:
        if key in self._buckets or len(self._buckets) < self.max_keys:
            return key
        while self._buckets:
            oldest = next(iter(self._buckets))
            if self._tokens(oldest, now) < self.burst:
                break
            del self._buckets[oldest]
        return key if len(self._buckets) < self.max_keys else OVERFLOW


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6 and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class RateLimit:
    """Per-key limit on authenticated requests, per-address limit on failed authentication;
    health checks, the spec and the web pages answer without a key and are never charged."""

    def __init__(
        self, app: ASGIApp, *, rate: float, burst: int, failures_per_minute: float = 0, failures_burst: int = 1
    ) -> None:
        self.app = app
        self.keys = TokenBuckets(rate, burst) if rate > 0 else None
        self.failures = TokenBuckets(failures_per_minute / 60, failures_burst) if failures_per_minute > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.keys is None and self.failures is None):
            await self.app(scope, receive, send)
            return
        clock = scope["app"].state.clock
        key_hash = credentials.key_hash_from_scope(scope)
        if key_hash is not None and credentials.is_known(scope, key_hash):
            keys = self.keys
            wait = keys.take(key_hash, clock.now().timestamp()) if keys is not None else 0.0
            if keys is not None and wait > 0:
                why = f"this key is over its limit of {keys.rate:g} requests per second"
                await _refuse(scope, send, wait, "rate-limited", why)
                return
            await self.app(scope, receive, send)
            return

        address = client_address(scope)
        if self.failures is not None:
            wait = self.failures.wait(address, clock.now().timestamp())
            if wait > 0:
                await _refuse(
                    scope, send, wait, "too-many-auth-failures", "too many failed authentications from this address"
                )
                return
        status = 0

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watching)
        now = clock.now().timestamp()
        if status == 401:
            if self.failures is not None:
                self.failures.take(address, now)
        elif key_hash is not None and self.keys is not None and _authenticated(scope):
            self.keys.take(key_hash, now)  # its first request since it left the key cache


def _authenticated(scope: Scope) -> bool:
    """The route found the request's key valid (``get_caller`` marks the request)."""
    return scope.get("state", {}).get("caller") is not None


async def _refuse(scope: Scope, send: Send, wait: float, code: str, why: str) -> None:
    retry_after = max(1, math.ceil(wait))
    await send_problem(
        scope,
        send,
        status=429,
        code=code,
        title="Too many requests",
        detail=f"{why}; retry in {retry_after} s",
        headers=[(b"retry-after", str(retry_after).encode())],
    )


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """Every authenticated operation may answer 429 with Retry-After."""
    for path, operations in spec.get("paths", {}).items():
        if not path.startswith("/v1"):
            continue
        for operation in operations.values():
            operation.setdefault("responses", {}).setdefault(
                "429",
                {
                    "description": "Too many requests for this key (`rate-limited`), or too many failed "
                    "authentications from this address (`too-many-auth-failures`); retry after "
                    "`Retry-After` seconds",
                    "headers": {
                        "Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait"}
                    },
                    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                },
            )
    return spec
