from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.auth import service as auth
from dispatch.auth.models import Role
from dispatch.errors import Conflict, NotFound
from dispatch.outlets.models import Outlet
from dispatch.paging import Cut, Keyset
from dispatch.schemas import Id


def get(*, session: Session, outlet_id: int) -> Outlet:
    outlet = session.get(Outlet, outlet_id)
    if outlet is None:
        raise NotFound(f"outlet {outlet_id} not found", code="outlet-not-found")
    return outlet


def create(*, session: Session, code: str, name: str, now: datetime) -> Outlet:
    if session.scalar(select(Outlet.id).where(Outlet.code == code)) is not None:
        raise Conflict(f"an outlet with code {code!r} already exists", code="duplicate-outlet-code")
    outlet = Outlet(code=code, name=name, created_at=now)
    session.add(outlet)
    session.flush()
    return outlet


def sign_up(*, session: Session, code: str, name: str, now: datetime) -> tuple[Outlet, str]:
    """A new outlet and the API key its systems will use (the secret, shown once)."""
    outlet = create(session=session, code=code, name=name, now=now)
    _, secret = auth.issue(
        session=session, role=Role.outlet, outlet_id=outlet.id, now=now, name=f"outlet {outlet.code}"
    )
    return outlet, secret


OUTLETS: Keyset[Outlet] = Keyset("outlets", Id)


def list_outlets(*, session: Session, limit: int, cursor: str | None) -> Cut[Outlet]:
    return OUTLETS.fetch(session, select(Outlet), Outlet.id, cursor=cursor, limit=limit)
