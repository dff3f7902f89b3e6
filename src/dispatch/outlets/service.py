from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.errors import Conflict, NotFound
from dispatch.outlets.models import Outlet


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


def list_outlets(*, session: Session, limit: int, after_id: int | None) -> list[Outlet]:
    stmt = select(Outlet).order_by(Outlet.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(Outlet.id > after_id)
    return list(session.scalars(stmt))
