"""Optimistic concurrency for edits from several devices (RFC 9110 conditional requests).

A resource that people edit (a technician's details, a stock count) has a *version*: a digest
of the state an edit can change. Reads send it as a strong ``ETag``; an edit may send it back in
``If-Match``, and is refused with 412 when the row, read under its write lock, has moved on
since. Without ``If-Match`` the edit goes ahead (the header is opt-in, so existing integrations
keep working).

The digest covers what the edit could overwrite, not fields other actors move all the time
(a phone's location, the open-job count): those would turn every edit into a 412 without
protecting anything the edit touches.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from dispatch.errors import PreconditionFailed


def version_of(*state: Any) -> str:
    raw = json.dumps(state, sort_keys=True, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:18]).decode()


def etag(version: str) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> list[str] | None:
    """The entity tags of an ``If-Match`` header; ``None`` when there is none. Weak tags are kept
    with their ``W/`` prefix so they never match (If-Match compares strongly)."""
    if header is None:
        return None
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def check(if_match: list[str] | None, current: str, *, what: str) -> None:
    """Raise 412 unless ``If-Match`` is absent, ``*`` or names the current version."""
    if if_match is None or "*" in if_match or etag(current) in if_match:
        return
    raise PreconditionFailed(
        f"{what} has changed since you read it; read it again and re-apply your change",
        current_etag=etag(current),
    )


def etag_header(status: int = 200) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry that documents the ``ETag`` a versioned resource answers with."""
    return {
        status: {
            "headers": {
                "ETag": {
                    "description": "The version to send back as If-Match with your next change",
                    "schema": {"type": "string"},
                }
            }
        }
    }
