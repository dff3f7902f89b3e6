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
from dispatch.errors import Conflict, DispatchError, Forbidden, NotFound, Unauthorized, Unprocessable
from dispatch.outlets.models import Outlet
from dispatch.paging import Cut, Keyset
from dispatch.schemas import Id
from dispatch.technicians import service as technicians
from dispatch.technicians.models import Technician

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
    created_by_key_id: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never stored. ``created_by_key_id``
    is the key whose request asked for it (none for the service itself or the command line)."""
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
        created_by_key_id=created_by_key_id or None,  # 0 is the service itself
    )
    session.add(key)
    session.flush()
    return key, secret


def authenticate(*, session: Session, key_hash: str, now: datetime) -> Caller:
    row = session.execute(
        select(ApiKey.id, ApiKey.role, ApiKey.technician_id, ApiKey.outlet_id, Technician.active)
        .outerjoin(Technician, Technician.id == ApiKey.technician_id)
        .where(
            ApiKey.key_hash == key_hash,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    ).first()
    if row is None:
        raise Unauthorized("unknown or revoked API key", code="invalid-api-key")
    if row.technician_id is not None and not row.active:
        # The person left or is suspended: their phone's key must not keep reading customers' jobs.
        raise Forbidden(
            f"technician {row.technician_id} is deactivated; their key works again if they are reactivated",
            code="technician-inactive",
        )
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


def revoke(*, session: Session, key_id: int, now: datetime) -> list[ApiKey]:
    """Revoke a key and every successor it minted by rotating itself, down the chain: a stolen
    key that rotated itself must not leave its thief a working successor. A successor an admin
    issued (``POST /v1/api-keys/{id}/rotate``) is the admin's act and stays. Returns the keys
    revoked, the asked one first.

    The last admin key that does not expire cannot be revoked: nobody could administer the
    service any more (``dispatch create-key --role admin`` would be the only way back)."""
    key = session.get(ApiKey, key_id, with_for_update=True)
    if key is None:
        raise NotFound(f"API key {key_id} not found", code="api-key-not-found")
    chain = [key]
    while chain[-1].replaced_by_id is not None:
        successor = session.get(ApiKey, chain[-1].replaced_by_id, with_for_update=True)
        if successor is None or successor.created_by_key_id != chain[-1].id:
            break
        chain.append(successor)
    ending = [k for k in chain if k.revoked_at is None]
    if any(k.role is Role.admin for k in ending):
        _keep_an_admin(session, revoking={k.id for k in ending if k.id is not None})
    for k in ending:
        k.revoked_at = now
    session.flush()
    return chain


def _keep_an_admin(session: Session, *, revoking: set[int]) -> None:
    # Locked, so two admins revoking each other's keys at once cannot both succeed.
    lasting = session.scalars(
        select(ApiKey.id)
        .where(ApiKey.role == Role.admin, ApiKey.revoked_at.is_(None), ApiKey.expires_at.is_(None))
        .with_for_update()
    ).all()
    if not set(lasting) - revoking:
        raise Conflict(
            "this is the last admin key that does not expire: create another admin key before revoking it",
            code="last-admin-key",
        )


def rotate(
    *, session: Session, key_id: int, now: datetime, grace: timedelta, by_key_id: int | None = None
) -> tuple[ApiKey, str, ApiKey]:
    """A successor with the same role and binding; the old key keeps working for ``grace``.
    ``by_key_id`` is the key asking (the old key itself, or an admin's).

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
        session=session,
        role=old.role,
        now=now,
        name=old.name,
        technician_id=old.technician_id,
        outlet_id=old.outlet_id,
        created_by_key_id=by_key_id,
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
            _check_configured(existing, now)
            return existing
        try:
            with session.begin_nested():
                key, _ = issue(session=session, role=Role.admin, now=now, name="bootstrap admin", secret=secret)
            return key
        except IntegrityError:
            continue  # another worker created it between our look and our insert
    raise RuntimeError("could not create or find the bootstrap admin key")


class AdminKeyRefused(DispatchError):
    """``DISPATCH_ADMIN_KEY`` is a key that would be refused on every request: refuse to start."""

    status, code, title = 409, "admin-key-refused", "The configured admin key cannot be used"


def _check_configured(key: ApiKey, now: datetime) -> None:
    """Start-up treats the configured key as every request would: a revoked or expired key, or
    one that is not an admin's, stops the start with what to do, instead of a service that starts
    and then answers 401 to its own operator."""
    what = f"DISPATCH_ADMIN_KEY is API key {key.id} ({key.prefix}...)"
    fix = "Set DISPATCH_ADMIN_KEY to an active admin key, or unset it and run `dispatch create-key --role admin`."
    if key.role is not Role.admin:
        raise AdminKeyRefused(f"{what}, a {key.role.value} key, not an admin key. {fix}")
    if key.revoked_at is not None:
        raise AdminKeyRefused(f"{what}, revoked at {key.revoked_at.isoformat()}. {fix}")
    if key.expires_at is not None and key.expires_at <= now:
        successor = f" (rotated: its successor is key {key.replaced_by_id})" if key.replaced_by_id else ""
        raise AdminKeyRefused(f"{what}, expired at {key.expires_at.isoformat()}{successor}. {fix}")


def check_admin_key(*, session: Session, secret: str, now: datetime) -> None:
    """What start-up will say about ``DISPATCH_ADMIN_KEY``, without creating it (``dispatch serve``
    asks before it starts the server, to print the reason plainly)."""
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
    if existing is not None:
        _check_configured(existing, now)
