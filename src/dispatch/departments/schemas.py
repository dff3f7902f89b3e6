from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from dispatch.departments.models import Stage
from dispatch.departments.service import DepartmentView
from dispatch.schemas import RequestBody, ResponseBody, ShortText

# Codes are stable identifiers (English, snake case); names are for people.
Code = Annotated[str, StringConstraints(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]+$")]
# Up to 30 days: a target longer than the customer's whole promise many times over is a typo.
Minutes = Annotated[int, Field(strict=True, ge=1, le=30 * 24 * 60)]


class DepartmentPut(RequestBody):
    name: ShortText
    reply_target_minutes: Minutes = Field(description="How long it may take to answer an internal question")
    active: bool = True
    stages: dict[Stage, Minutes] | None = Field(
        default=None,
        description="Stages this department owns, with their internal target in minutes. Naming a stage moves it "
        "here from its owner; leaving out one this department owns is a 409 (every stage has one owner).",
        examples=[{"central_warehouse": 480}],
    )


class DepartmentPublic(ResponseBody):
    code: str
    name: str
    reply_target_minutes: int
    active: bool
    stages: dict[Stage, int] = Field(description="Owned stages and their internal targets in minutes")
    updated_at: datetime
    updated_by: str

    @classmethod
    def of(cls, view: DepartmentView) -> DepartmentPublic:
        d = view.department
        return cls(
            code=d.code,
            name=d.name,
            reply_target_minutes=d.reply_target_minutes,
            active=d.active,
            stages=view.stages,
            updated_at=d.updated_at,
            updated_by=d.updated_by,
        )


class DepartmentList(ResponseBody):
    items: list[DepartmentPublic]


class CausePut(RequestBody):
    label: ShortText
    department: Code | None = Field(default=None, description="The department this cause is usually charged to")
    active: bool = True


class CausePublic(ResponseBody):
    code: str
    label: str
    department: str | None
    active: bool
    updated_at: datetime
    updated_by: str


class CauseList(ResponseBody):
    items: list[CausePublic]
