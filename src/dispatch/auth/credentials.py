"""The one reading of ``Authorization: Bearer <key>``, shared by authentication and by
everything keyed on a credential (the rate limiter, the key cache, the slots' lanes): if they
read it differently, `bearer K` and `Bearer  K` become different keys to one and the same key
to the other."""

from __future__ import annotations

from starlette.types import Scope

SCHEME = "bearer"


def bearer_secret(header: str | bytes | None) -> str | None:
    """The key in an ``Authorization`` header value, or None if there is none.

    The scheme is case-insensitive (RFC 9110, 11.1) and the whitespace around the key is not
    part of it; a value of more than two words is not a bearer credential."""
    if header is None:
        return None
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != SCHEME:
        return None
    return parts[1]


def from_scope(scope: Scope) -> str | None:
    """The bearer key of an ASGI request, for middleware that runs before the routes."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return bearer_secret(value)
    return None


def key_hash_from_scope(scope: Scope) -> str | None:
    """The hash that keys the key cache and the rate limiter's buckets, if a key was sent."""
    from dispatch.auth.service import hash_key

    secret = from_scope(scope)
    return hash_key(secret) if secret else None


def is_known(scope: Scope, key_hash: str | None) -> bool:
    """The key authenticated a moment ago (it is in this process's key cache): no lookup."""
    return key_hash is not None and scope["app"].state.recent_keys.get(key_hash) is not None
