"""Request rate per API key (OWASP API4): a token bucket per key, answered with 429 and
``Retry-After`` when empty.

Buckets live in the process's memory, keyed by the hash of the presented bearer token (so
unknown keys are limited too, before any database work). With several server processes each
has its own buckets: a key may get up to N times the rate across N processes. Good enough to
stop a runaway integration; a limit that must be exact belongs in a shared store or the load
balancer. Time is the service's injectable clock, so tests refill a bucket by moving it.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from dispatch.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE


class TokenBuckets:
    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> float:
        """Take a token: 0.0 if there was one, else seconds until there will be."""
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= self.max_keys and key not in self._buckets:
                    self._buckets.clear()
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class RateLimit:
    """Per-key limit on every authenticated request; health checks and anonymous requests
    (which are refused with 401 anyway) are not counted."""

    def __init__(self, app: ASGIApp, *, rate: float, burst: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate, burst) if rate > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                token = value
                break
        if not token:
            await self.app(scope, receive, send)
            return
        key = hashlib.sha256(token).hexdigest()
        now = scope["app"].state.clock.now().timestamp()
        wait = self.buckets.take(key, now)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        body = json.dumps(
            {
                "type": PROBLEM_TYPE_BASE + "rate-limited",
                "title": "Too many requests",
                "status": 429,
                "detail": f"this key is over its limit of {self.buckets.rate:g} requests per second; retry in "
                f"{retry_after} s",
                "code": "rate-limited",
                "instance": scope.get("path", ""),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """Every authenticated operation may answer 429 with Retry-After."""
    for path, operations in spec.get("paths", {}).items():
        if not path.startswith("/v1"):
            continue
        for operation in operations.values():
            operation.setdefault("responses", {}).setdefault(
                "429",
                {
                    "description": "Too many requests for this key; retry after `Retry-After` seconds",
                    "headers": {
                        "Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait"}
                    },
                    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                },
            )
    return spec
