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
    expires_at: datetime | None = Field(description="A rotated key stops working then")
    replaced_by_id: int | None = Field(description="The key that replaced this one by rotation")
    created_by_key_id: int | None = Field(
        default=None, description="The key that issued this one (itself rotating, or an admin's); none: the service"
    )


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The secret. Shown once; only its hash is stored.")


class ApiKeyRotate(RequestBody):
    grace_hours: float | None = Field(
        default=None,
        ge=0,
        le=720,
        description="How long the old key keeps working beside the new one (default: the server's setting)",
    )


class ApiKeyRotated(ApiKeyCreated):
    previous: ApiKeyPublic = Field(description="The old key, with the time it stops working")
