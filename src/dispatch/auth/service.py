"""API keys: issue, authenticate, revoke. Only hashes are stored."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatch.auth.credentials import hash_key as hash_key  # re-exported: what is stored of a key
from dispatch.auth.models import BOUND_ROLES, ApiKey, Role
from dispatch.errors import Conflict, NotFound, Unauthorized, Unprocessable
from dispatch.outlets.models import Outlet
from dispatch.paging import Cut, Keyset
from dispatch.schemas import Id
from dispatch.technicians import service as technicians

KEY_PREFIX = "dsp_"


@dataclass(frozen=True)
class Caller:
    """Who is making a request: the key's role and what it is bound to."""

    key_id: int
    role: Role
    technician_id: int | None = None
    outlet_id: int | None = None

    @property
    def actor(self) -> str:
        """How the caller is named on a job's timeline."""
        if self.key_id == 0:
            return "system"
        if self.role is Role.technician:
            return f"technician:{self.technician_id}"
        if self.role is Role.outlet:
            return f"outlet:{self.outlet_id}"
        return f"{self.role.value}:key-{self.key_id}"


# The service itself, when it acts on its own (auto-dispatch, watchers).
SYSTEM = Caller(key_id=0, role=Role.admin)


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def issue(
    *,
    session: Session,
    role: Role,
    now: datetime,
    name: str = "",
    technician_id: int | None = None,
    outlet_id: int | None = None,
    secret: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never stored."""
    bound_field = BOUND_ROLES.get(role)
    given = {"technician_id": technician_id, "outlet_id": outlet_id}
    for field, value in given.items():
        if field == bound_field and value is None:
            raise Unprocessable(f"a {role.value} key needs {field}", code="key-binding-required")
        if field != bound_field and value is not None:
            raise Unprocessable(f"a {role.value} key cannot carry {field}", code="key-binding-invalid")
    if technician_id is not None:
        technicians.get(session=session, technician_id=technician_id)
    # The row, not outlets.service: signing an outlet up issues its key through here.
    if outlet_id is not None and session.get(Outlet, outlet_id) is None:
        raise NotFound(f"outlet {outlet_id} not found", code="outlet-not-found")
    secret = secret or new_secret()
    key = ApiKey(
        key_hash=hash_key(secret),
        prefix=secret[:8],
        name=name,
        role=role,
        technician_id=technician_id,
        outlet_id=outlet_id,
        created_at=now,
    )
    session.add(key)
    session.flush()
    return key, secret


def authenticate(*, session: Session, key_hash: str, now: datetime) -> Caller:
    row = session.execute(
        select(ApiKey.id, ApiKey.role, ApiKey.technician_id, ApiKey.outlet_id).where(
            ApiKey.key_hash == key_hash,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    ).first()
    if row is None:
        raise Unauthorized("unknown or revoked API key", code="invalid-api-key")
    return Caller(key_id=row.id, role=Role(row.role), technician_id=row.technician_id, outlet_id=row.outlet_id)


class RecentKeys:
    """Keys that authenticated in the last few seconds, so most requests skip the lookup.

    Only successful lookups are kept, for ``ttl`` seconds of the process's monotonic clock (not
    the service clock: this is a cache, not a rule). A revoked key is dropped at once in the
    process that revoked it and stops working everywhere within ``ttl``.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Caller]] = {}

    def get(self, key_hash: str) -> Caller | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, caller: Caller) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.ttl, caller)

    def forget(self, key_id: int) -> None:
        for key_hash, (_, caller) in list(self._entries.items()):
            if caller.key_id == key_id:
                self._entries.pop(key_hash, None)


def revoke(*, session: Session, key_id: int, now: datetime) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} not found", code="api-key-not-found")
    if key.revoked_at is None:
        key.revoked_at = now
        session.flush()
    return key


def rotate(*, session: Session, key_id: int, now: datetime, grace: timedelta) -> tuple[ApiKey, str, ApiKey]:
    """A successor with the same role and binding; the old key keeps working for ``grace``.

    Returns the new key, its secret (shown once) and the old key."""
    old = session.get(ApiKey, key_id, with_for_update=True)
    if old is None:
        raise NotFound(f"API key {key_id} not found", code="api-key-not-found")
    if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
        raise Conflict(f"API key {key_id} is revoked or expired", code="api-key-inactive")
    if old.replaced_by_id is not None:
        raise Conflict(
            f"API key {key_id} was already rotated (successor {old.replaced_by_id})",
            code="api-key-already-rotated",
            replaced_by_id=old.replaced_by_id,
        )
    new, secret = issue(
        session=session, role=old.role, now=now, name=old.name, technician_id=old.technician_id, outlet_id=old.outlet_id
    )
    old.replaced_by_id = new.id
    old.expires_at = now + grace
    session.flush()
    return new, secret, old


KEYS: Keyset[ApiKey] = Keyset("api-keys", Id)


def list_keys(*, session: Session, limit: int, cursor: str | None) -> Cut[ApiKey]:
    return KEYS.fetch(session, select(ApiKey), ApiKey.id, cursor=cursor, limit=limit)


def ensure_admin_key(*, session: Session, secret: str, now: datetime) -> ApiKey:
    """``DISPATCH_ADMIN_KEY`` creates (or confirms) an admin key at start-up.

    Several workers start at once: whoever inserts second finds the first one's key."""
    for _ in range(2):
        existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
        if existing is not None:
            if existing.role is not Role.admin or existing.revoked_at is not None:
                raise Unprocessable("DISPATCH_ADMIN_KEY matches a key that is not an active admin key")
            return existing
        try:
            with session.begin_nested():
                key, _ = issue(session=session, role=Role.admin, now=now, name="bootstrap admin", secret=secret)
            return key
        except IntegrityError:
            continue  # another worker created it between our look and our insert
    raise RuntimeError("could not create or find the bootstrap admin key")
