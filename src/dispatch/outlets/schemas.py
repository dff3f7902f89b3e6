from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from dispatch.schemas import RequestBody, ResponseBody, ShortText

OutletCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
]


class OutletCreate(RequestBody):
    code: OutletCode = Field(examples=["shop-042"])
    name: ShortText


class OutletPublic(ResponseBody):
    id: int
    code: str
    name: str
    created_at: datetime


class OutletCreated(OutletPublic):
    api_key: str = Field(description="The outlet's API key. Shown once; store it now.")
