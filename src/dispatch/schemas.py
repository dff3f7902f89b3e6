"""Field types and base models shared by every domain's request and response bodies."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)


def json_number(value: Any) -> Any:
    # JSON says 3 and 3.0 are the same integer; "3" and true are not numbers at all.
    if isinstance(value, (str, bool, bytes)):
        raise ValueError("must be a JSON number, not a string or boolean")
    return value


def _json_text(value: Any) -> Any:
    # Timestamps and dates are ISO 8601 strings; a bare number is not silently epoch seconds.
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string")
    return value


def _local_time(value: Any) -> Any:
    if not isinstance(value, str) or not _LOCAL_TIME.fullmatch(value):
        raise ValueError("must be a local wall-clock time HH:MM or HH:MM:SS, without an offset")
    return value


_LOCAL_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?")

# Ids are 32-bit integers in the database; anything outside is a 422, never a driver error.
MAX_ID = 2_147_483_647
# Bounds go before the validator, or pydantic leaves them out of the JSON schema.
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(json_number)]
# Instants this service can meet: a repair request, a tap, an ETA. Outside, a typo or a probe,
# refused here rather than overflowing when converted to UTC (year 1 at +01:00) further in.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def sane_instant(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError("must be between the years 2000 and 2999")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_json_text), AfterValidator(sane_instant)]
Day = Annotated[date, BeforeValidator(_json_text)]
LocalTime = Annotated[
    time,
    BeforeValidator(_local_time),
    WithJsonSchema(
        {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", "examples": ["08:00"]}
    ),
]

Latitude = Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False, examples=[52.2297])]
Longitude = Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False, examples=[21.0122])]


CATEGORY_MAX_LENGTH = 64  # the column's length


def _normalise_category(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    normal = " ".join(value.split()).lower()
    if len(normal) > CATEGORY_MAX_LENGTH:  # lower() may lengthen: "İ" becomes two characters
        raise ValueError(f"must be at most {CATEGORY_MAX_LENGTH} characters once lower-cased")
    return normal


# A product category, also a technician's skill: compared case- and space-insensitively.
Category = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=CATEGORY_MAX_LENGTH),
    AfterValidator(_normalise_category),
    Field(examples=["washing machine"]),
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=40)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class RequestBody(BaseModel):
    """Bodies clients send: unknown fields are refused, not ignored (a typo must not lose data).

    Numbers and booleans are strict (``"52.1"`` or ``"yes"`` is a 422); timestamps and enums
    arrive as JSON strings and are parsed.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: Any) -> Any:
        # PostgreSQL cannot store NUL in text; no honest client sends one.
        if _has_nul(data):
            raise ValueError("text must not contain NUL characters")
        return data


class WithOptionalPosition(RequestBody):
    """A body whose optional ``lat`` and ``lon`` come together or not at all."""

    @model_validator(mode="after")
    def _lat_and_lon_together(self) -> WithOptionalPosition:
        if (getattr(self, "lat", None) is None) != (getattr(self, "lon", None) is None):
            raise ValueError("send lat and lon together, or neither")
        return self


class ResponseBody(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
