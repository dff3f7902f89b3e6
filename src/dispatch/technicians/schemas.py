from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool

from dispatch.schemas import (
    Category,
    Latitude,
    LocalTime,
    Longitude,
    Phone,
    RequestBody,
    ResponseBody,
    ShortText,
    Timestamp,
    WithOptionalPosition,
    json_number,
)


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_zone(value: str) -> str:
    # Checked against the list of zones, not by opening a file: "Europe" is a folder.
    if value not in _zone_names():
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Warsaw")
    return value


TimeZoneName = Annotated[
    str, Field(min_length=1, max_length=64, examples=["Europe/Warsaw"]), AfterValidator(_known_zone)
]
Skills = Annotated[list[Category], Field(min_length=1, max_length=50)]
Capacity = Annotated[int, Field(ge=1, le=100), BeforeValidator(json_number)]
BranchCode = Annotated[str, Field(min_length=1, max_length=64)]


class Shift(RequestBody):
    """Working hours in the technician's own time zone; an end before the start runs overnight."""

    start: LocalTime
    end: LocalTime
    days: list[Annotated[int, Field(ge=1, le=7), BeforeValidator(json_number)]] = Field(
        default=[1, 2, 3, 4, 5, 6, 7], min_length=1, max_length=7, description="ISO weekdays, 1 = Monday"
    )
    timezone: TimeZoneName = "UTC"


class TechnicianCreate(RequestBody):
    name: ShortText
    phone: Phone | None = None
    skills: Skills
    lat: Latitude
    lon: Longitude
    capacity: Capacity = 3
    on_duty: StrictBool = True
    active: StrictBool = True
    shift: Shift | None = None
    home_branch: BranchCode | None = None


# The default of a field that may be left out but not sent as null: pydantic never validates a
# default, so None here means "not sent" while the annotation keeps null out of the schema.
NOT_SENT: Any = None


class TechnicianUpdate(WithOptionalPosition):
    """Send only what changes. `phone`, `shift` and `home_branch` may be set to null to clear
    them; the other fields cannot be null."""

    # Not Optional: leaving a field out changes nothing, but null is refused.
    name: ShortText = NOT_SENT
    phone: Phone | None = None
    skills: Skills = NOT_SENT
    lat: Latitude = NOT_SENT
    lon: Longitude = NOT_SENT
    capacity: Capacity = NOT_SENT
    on_duty: StrictBool = NOT_SENT
    active: StrictBool = NOT_SENT
    shift: Shift | None = None
    home_branch: BranchCode | None = None


class LocationReport(RequestBody):
    lat: Latitude
    lon: Longitude
    at: Timestamp | None = Field(default=None, description="Device time of the fix; default: when received")


class ShiftPublic(ResponseBody):
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", examples=["08:00"])
    end: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", examples=["16:00"])
    days: list[int]
    timezone: str


class TechnicianPublic(ResponseBody):
    id: int
    name: str
    phone: str | None
    skills: list[str]
    lat: float
    lon: float
    location_at: datetime | None
    capacity: int
    open_jobs: int
    on_duty: bool
    active: bool
    shift: ShiftPublic | None
    home_branch: str | None
    on_shift_now: bool
    available_now: bool = Field(description="Active, on duty, on shift and under capacity right now")
    created_at: datetime
    updated_at: datetime
