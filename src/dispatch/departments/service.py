"""Departments, the stages they own with their internal targets, and the cause catalogue.

Seeded as in the brief (docs/departments.md); an admin renames, re-targets and extends them.
Other domains ask here who owns a stage and whether a department or cause code exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dispatch.auth.service import SYSTEM
from dispatch.departments.models import CauseCode, Department, Stage, StageTarget
from dispatch.errors import Conflict, NotFound, Unprocessable

# What a fresh database holds (the migration seeds the same). Targets are in minutes.
DEPARTMENTS: dict[str, dict[str, Any]] = {
    "customer_service": {"name": "Customer service", "reply_target_minutes": 120},
    "dispatch": {"name": "Dispatch", "reply_target_minutes": 60},
    "warehouse": {"name": "Warehouse", "reply_target_minutes": 240},
    "logistics": {"name": "Logistics", "reply_target_minutes": 240},
    "field": {"name": "Field service", "reply_target_minutes": 240},
    "quality": {"name": "Quality", "reply_target_minutes": 480},
    "supplier": {"name": "Supplier management", "reply_target_minutes": 1440},
}
STAGES: dict[Stage, tuple[str, int]] = {
    Stage.dispatch: ("dispatch", 30),  # a technician chosen within 30 minutes
    Stage.central_warehouse: ("warehouse", 8 * 60),  # a reserved part shipped within 8 hours
    Stage.shipment: ("logistics", 24 * 60),  # on the road at most a day
    Stage.field: ("field", 8 * 60),  # from assignment to the end of the visit
    Stage.callback: ("customer_service", 24 * 60),  # the customer called back within a day
}
CAUSES: dict[str, tuple[str, str | None]] = {
    "dispatch_late": ("Nobody was sent in time", "dispatch"),
    "part_late": ("The part came late", "warehouse"),
    "wrong_part": ("The wrong part was sent", "warehouse"),
    "shipment_late": ("The shipment was late on the road", "logistics"),
    "no_show": ("The technician did not come in the agreed window", "field"),
    "misdiagnosis": ("The fault was misdiagnosed", "field"),
    "repair_failed": ("The repair did not hold", "field"),
    "callback_late": ("The customer was not called back in time", "customer_service"),
    "product_defect": ("A defect of the product itself", "quality"),
    "supplier_late": ("The supplier delivered late", "supplier"),
    "customer_absent": ("The customer was not there", None),
    "customer_rescheduled": ("The customer asked for a later visit", None),
}


@dataclass(frozen=True)
class DepartmentView:
    department: Department
    stages: dict[Stage, int]  # the stages it owns, with their targets in minutes


def restore_defaults(session: Session, now: datetime) -> None:
    """Put the brief's departments, stage targets and causes back (a database emptied by hand)."""
    session.execute(delete(StageTarget))
    session.execute(delete(CauseCode))
    session.execute(delete(Department))
    session.add_all(
        Department(code=code, updated_at=now, updated_by=SYSTEM.actor, **values) for code, values in DEPARTMENTS.items()
    )
    session.flush()
    session.add_all(
        StageTarget(stage=stage, department=owner, target_minutes=minutes) for stage, (owner, minutes) in STAGES.items()
    )
    session.add_all(
        CauseCode(code=code, label=label, department=owner, updated_at=now, updated_by=SYSTEM.actor)
        for code, (label, owner) in CAUSES.items()
    )
    session.flush()


def list_departments(session: Session) -> list[DepartmentView]:
    owned: dict[str, dict[Stage, int]] = {}
    for target in session.scalars(select(StageTarget).order_by(StageTarget.stage)):
        owned.setdefault(target.department, {})[Stage(target.stage)] = target.target_minutes
    return [
        DepartmentView(d, owned.get(d.code, {})) for d in session.scalars(select(Department).order_by(Department.code))
    ]


def get(session: Session, code: str) -> DepartmentView:
    department = session.get(Department, code)
    if department is None:
        raise NotFound(f"department {code!r} not found", code="department-not-found")
    stages = {
        Stage(t.stage): t.target_minutes
        for t in session.scalars(select(StageTarget).where(StageTarget.department == code))
    }
    return DepartmentView(department, stages)


def require(session: Session, code: str, *, field: list[str | int]) -> Department:
    """A department a caller named: it must exist and be active (422 otherwise)."""
    department = session.get(Department, code)
    if department is None or not department.active:
        raise Unprocessable(
            f"{code!r} is not an active department",
            code="unknown-department",
            errors=[{"loc": ["body", *field], "msg": "not an active department", "type": "value_error"}],
        )
    return department


def owner_of(session: Session, stage: Stage) -> StageTarget:
    target = session.get(StageTarget, stage)
    if target is None:  # only if someone deleted the seeded row by hand
        raise NotFound(f"stage {stage.value} has no owner", code="stage-not-owned")
    return target


def stage_targets(session: Session) -> dict[Stage, StageTarget]:
    return {Stage(t.stage): t for t in session.scalars(select(StageTarget))}


def put(
    *,
    session: Session,
    code: str,
    name: str,
    reply_target_minutes: int,
    active: bool,
    stages: dict[Stage, int] | None,
    actor: str,
    now: datetime,
) -> DepartmentView:
    """Create or change a department. ``stages`` it names move to it with their targets;
    stages it owned and no longer names stay where they are only if another department takes
    them, so every stage always has exactly one owner."""
    department = session.get(Department, code, with_for_update=True)
    owned = {Stage(t.stage) for t in session.scalars(select(StageTarget).where(StageTarget.department == code))}
    if stages is not None and owned - set(stages):
        left = ", ".join(sorted(s.value for s in owned - set(stages)))
        raise Conflict(
            f"{code} owns {left}: give the stage to another department first (PUT that department with it)",
            code="stage-would-be-unowned",
        )
    if not active and (owned or stages):
        raise Conflict(f"{code} owns stages; give them to another department first", code="department-owns-stages")
    if department is None:
        department = Department(
            code=code,
            name=name,
            reply_target_minutes=reply_target_minutes,
            active=active,
            updated_at=now,
            updated_by=actor,
        )
        session.add(department)
    else:
        department.name, department.reply_target_minutes, department.active = name, reply_target_minutes, active
        department.updated_at, department.updated_by = now, actor
    session.flush()
    for stage, minutes in (stages or {}).items():
        target = session.get(StageTarget, stage, with_for_update=True)
        if target is None:
            session.add(StageTarget(stage=stage, department=code, target_minutes=minutes))
        else:
            target.department, target.target_minutes = code, minutes
    session.flush()
    return get(session, code)


def list_causes(session: Session, *, include_inactive: bool = False) -> list[CauseCode]:
    stmt = select(CauseCode).order_by(CauseCode.code)
    if not include_inactive:
        stmt = stmt.where(CauseCode.active.is_(True))
    return list(session.scalars(stmt))


def require_cause(session: Session, code: str, *, field: list[str | int]) -> CauseCode:
    cause = session.get(CauseCode, code)
    if cause is None or not cause.active:
        raise Unprocessable(
            f"{code!r} is not a cause in the catalogue (GET /v1/causes)",
            code="unknown-cause",
            errors=[{"loc": ["body", *field], "msg": "not an active cause code", "type": "value_error"}],
        )
    return cause


def put_cause(
    *, session: Session, code: str, label: str, department: str | None, active: bool, actor: str, now: datetime
) -> CauseCode:
    if department is not None:
        require(session, department, field=["department"])
    cause = session.get(CauseCode, code, with_for_update=True)
    if cause is None:
        cause = CauseCode(
            code=code, label=label, department=department, active=active, updated_at=now, updated_by=actor
        )
        session.add(cause)
    else:
        cause.label, cause.department, cause.active = label, department, active
        cause.updated_at, cause.updated_by = now, actor
    session.flush()
    return cause
