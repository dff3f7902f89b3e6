from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from dispatch.auth.models import Role
from dispatch.schemas import Id, RequestBody, ResponseBody


class ApiKeyCreate(RequestBody):
    role: Role
    technician_id: Id | None = Field(default=None, description="Required for the technician role")
    outlet_id: Id | None = Field(default=None, description="Required for the outlet role")
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""


class ApiKeyPublic(ResponseBody):
    id: int
    prefix: str = Field(description="The key's first characters, to recognise it")
    name: str
    role: Role
    technician_id: int | None
    outlet_id: int | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The secret. Shown once; only its hash is stored.")
