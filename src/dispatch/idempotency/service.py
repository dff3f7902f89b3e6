"""Idempotency keys: take a key's lock, replay its stored answer, release or keep it.

Plain functions over a session. The middleware (``middleware.py``) calls them in short
transactions of their own, before and after the request's own unit of work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from dispatch.database.core import Database
from dispatch.idempotency.models import IdempotencyKey

# Answers that are final for the request that got them, so a retry must see them again.
# Everything else (5xx, auth, conflicts and races, rate limits) releases the key: the
# client's retry runs the request afresh.
_NOT_KEPT = {401, 403, 408, 409, 429}


def keeps(status: int) -> bool:
    return status < 500 and status not in _NOT_KEPT


@dataclass(frozen=True)
class Decision:
    outcome: Literal["run", "replay", "mismatch", "in_flight"]
    row_id: int | None = None
    status: int | None = None
    headers: list[Any] | None = None
    body: bytes | None = None


def begin(
    *,
    database: Database,
    owner: str,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    now: datetime,
    keep_for: timedelta,
    lock_for: timedelta,
    also_matches: Callable[[], str] | None = None,
) -> Decision:
    """Take the key (``run``) or say what to answer instead.

    The unique constraint on (owner, key) decides races: of requests arriving together,
    one insert wins and the others find its row, still locked (``in_flight``) or answered
    (``replay``). An expired key is forgotten; a lock older than ``lock_for`` belongs to a
    request whose process died, and is taken over.

    ``also_matches`` is asked for only when the stored fingerprint differs: the request's
    ``fingerprints.raw``, so a key taken before fingerprints read the body's meaning (they were
    the raw bytes) still replays a byte-for-byte retry.
    """
    for _ in range(3):
        with database.transaction() as session:
            row = session.scalar(
                select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key).with_for_update()
            )
            if row is None:
                fresh = IdempotencyKey(
                    owner=owner,
                    key=key,
                    method=method,
                    path=path,
                    fingerprint=fingerprint,
                    locked_at=now,
                    expires_at=now + keep_for,
                )
                try:
                    with session.begin_nested():
                        session.add(fresh)
                        session.flush()
                except IntegrityError:
                    continue  # another request with this key got there first: look again
                return Decision("run", row_id=fresh.id)
            if row.expires_at <= now:
                row.method, row.path, row.fingerprint = method, path, fingerprint
                row.status, row.headers, row.body, row.completed_at = None, None, None, None
                row.locked_at, row.expires_at = now, now + keep_for
                session.flush()
                return Decision("run", row_id=row.id)
            if row.fingerprint != fingerprint and (also_matches is None or row.fingerprint != also_matches()):
                return Decision("mismatch")
            if row.status is None:
                if row.locked_at <= now - lock_for:
                    row.locked_at = now
                    session.flush()
                    return Decision("run", row_id=row.id)
                return Decision("in_flight")
            return Decision("replay", status=row.status, headers=row.headers, body=row.body)
    return Decision("in_flight")


def finish(*, database: Database, row_id: int, status: int, headers: list[Any], body: bytes, now: datetime) -> None:
    """Keep the first answer, or let the key go so a retry runs afresh."""
    with database.transaction() as session:
        if keeps(status):
            session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == row_id)
                .values(status=status, headers=headers, body=body, completed_at=now)
            )
        else:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id, IdempotencyKey.status.is_(None)))


def purge(*, database: Database, now: datetime, batch: int = 5000) -> int:
    """Forget keys past their time. Returns how many went."""
    removed = 0
    while True:
        with database.transaction() as session:
            ids = list(
                session.scalars(
                    select(IdempotencyKey.id)
                    .where(IdempotencyKey.expires_at <= now)
                    .order_by(IdempotencyKey.id)
                    .limit(batch)
                )
            )
            if not ids:
                return removed
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(ids)))
            removed += len(ids)
