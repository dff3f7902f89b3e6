"""What an uploaded file really is, decided by decoding it (never by its name or declared type),
and the copies we serve: EXIF (GPS included) stripped, and a thumbnail.

Pure functions over bytes, no database and no storage, so they run on a worker thread and
are tested on their own.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
SERVED_QUALITY = 85
THUMBNAIL_QUALITY = 80


class NotAnImage(ValueError):
    """The bytes do not decode as a JPEG, PNG or WebP image."""


class TooManyPixels(ValueError):
    """The image declares more pixels than we are willing to decode (a decompression bomb)."""

    def __init__(self, width: int, height: int, limit: int) -> None:
        super().__init__(f"{width} x {height} pixels is more than the {limit} allowed")
        self.width, self.height, self.limit = width, height, limit


@dataclass(frozen=True)
class Metadata:
    """What the photo says about itself. ``taken_at`` is aware when the file says in which zone
    (GPS time is UTC; EXIF 2.31 has offsets); ``taken_at_local`` is a bare wall-clock time."""

    taken_at: datetime | None = None
    taken_at_local: datetime | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Processed:
    sha256: str
    format: str  # jpeg, png, webp
    size_bytes: int
    width: int
    height: int
    metadata: Metadata
    served: bytes  # JPEG, upright, no EXIF
    thumbnail: bytes  # JPEG, longest side at most the thumbnail size


def process(data: bytes, *, max_pixels: int, thumbnail_px: int) -> Processed:
    """Decode an upload completely and build what we keep. Raises ``NotAnImage`` or
    ``TooManyPixels``; checks the declared size before decoding a single pixel."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:  # beyond twice Pillow's own limit
        raise TooManyPixels(0, 0, max_pixels) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise NotAnImage(str(exc)) from exc
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise TooManyPixels(width, height, max_pixels)
        kind = (image.format or "").lower()
        metadata = read_metadata(image)
        try:
            image.load()  # verify() would not decode; a truncated or corrupt body fails here
            ImageOps.exif_transpose(image, in_place=True)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise NotAnImage(str(exc)) from exc
        upright = _flatten(image)
        served = io.BytesIO()
        upright.save(served, format="JPEG", quality=SERVED_QUALITY)  # no exif= : none of the original's metadata
        upright.thumbnail((thumbnail_px, thumbnail_px))
        thumb = io.BytesIO()
        upright.save(thumb, format="JPEG", quality=THUMBNAIL_QUALITY)
    return Processed(
        sha256=digest,
        format="jpeg" if kind == "jpeg" else kind,
        size_bytes=len(data),
        width=width,
        height=height,
        metadata=metadata,
        served=served.getvalue(),
        thumbnail=thumb.getvalue(),
    )


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for the JPEG we serve. Transparent parts (a PNG or WebP with alpha) go on white, as a
    viewer shows them, not on whatever colour the invisible pixels happened to hold (often black)."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


# --- EXIF ---------------------------------------------------------------------------------------


def read_metadata(image: Image.Image) -> Metadata:
    """Capture time and GPS position, if the image carries them and they make sense. Anything
    malformed counts as absent: a strange EXIF block is not a reason to refuse a photo."""
    try:
        exif = image.getexif()
        gps = dict(exif.get_ifd(ExifTags.IFD.GPSInfo))
        details = dict(exif.get_ifd(ExifTags.IFD.Exif))
    except Exception:
        return Metadata()
    lat = _coordinate(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "NS", 90)
    lon = _coordinate(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "EW", 180)
    if lat is None or lon is None:
        lat = lon = None
    taken_at = _gps_time(gps.get(ExifTags.GPS.GPSDateStamp), gps.get(ExifTags.GPS.GPSTimeStamp))
    local = _exif_time(details.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime))
    if taken_at is None and local is not None:
        offset = _offset(details.get(ExifTags.Base.OffsetTimeOriginal) or details.get(ExifTags.Base.OffsetTime))
        if offset is not None:
            taken_at, local = local.replace(tzinfo=offset).astimezone(UTC), None
    return Metadata(taken_at=taken_at, taken_at_local=None if taken_at else local, lat=lat, lon=lon)


def _number(value: Any) -> float:
    result = float(value)
    if not math.isfinite(result):
        raise ValueError("not a finite number")
    return result


def _coordinate(value: Any, ref: Any, refs: str, limit: float) -> float | None:
    try:
        degrees, minutes, seconds = (_number(v) for v in value)
        result = degrees + minutes / 60 + seconds / 3600
        ref = ref.decode() if isinstance(ref, bytes) else ref
        ref = str(ref).strip("\x00 ").upper()
        if ref not in refs:
            return None
        if ref == refs[1]:
            result = -result
        return result if -limit <= result <= limit and not (degrees < 0 or minutes < 0 or seconds < 0) else None
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, UnicodeDecodeError):
        return None


def _gps_time(date_stamp: Any, time_stamp: Any) -> datetime | None:
    try:
        day = datetime.strptime(str(date_stamp).strip("\x00 "), "%Y:%m:%d")
        hours, minutes, seconds = (_number(v) for v in time_stamp)
        moment = day + timedelta(hours=hours, minutes=minutes, seconds=seconds)
        return _plausible(moment.replace(tzinfo=UTC))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def _exif_time(value: Any) -> datetime | None:
    try:
        return _plausible(datetime.strptime(str(value).strip("\x00 "), "%Y:%m:%d %H:%M:%S"))
    except (TypeError, ValueError):
        return None


def _plausible(moment: datetime) -> datetime | None:
    """A camera clock that says year 1 (or 9999) has no time worth judging; taking it as absent
    also keeps the zone arithmetic that follows clear of the calendar's edges."""
    return moment if 2000 <= moment.year < 3000 else None


def _offset(value: Any) -> timezone | None:
    try:
        text = str(value).strip("\x00 ")
        sign = -1 if text[0] == "-" else 1
        hours, minutes = text[1:].split(":")
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(sign * delta) if delta < timedelta(hours=15) else None
    except (TypeError, ValueError, IndexError):
        return None
