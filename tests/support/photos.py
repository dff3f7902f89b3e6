"""Proof of work: real images built with Pillow, with and without EXIF, and their uploads."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime, timedelta
from typing import Any

from PIL import ExifTags, Image

from support.api import CUSTOMER, Api
from support.workflow import on_site_job

KRAKOW = (50.0614, 19.9366)


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return float(degrees), float(minutes), seconds


def image_bytes(
    *,
    gps: tuple[float, float] | None = None,
    gps_time: datetime | None = None,
    local_time: datetime | None = None,
    offset: str | None = None,
    size: tuple[int, int] = (64, 48),
    fmt: str = "JPEG",
    colour=(200, 120, 40),
) -> bytes:
    """A real image. ``gps_time`` (UTC) goes in the GPS block with the position; ``local_time``
    is EXIF DateTimeOriginal (a wall-clock time), with ``offset`` as OffsetTimeOriginal."""
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    if local_time is not None:
        text = local_time.strftime("%Y:%m:%d %H:%M:%S")
        exif[ExifTags.Base.DateTime] = text
        details = exif.get_ifd(ExifTags.IFD.Exif)
        details[ExifTags.Base.DateTimeOriginal] = text
        if offset:
            details[ExifTags.Base.OffsetTimeOriginal] = offset
    if gps is not None or gps_time is not None:
        block = exif.get_ifd(ExifTags.IFD.GPSInfo)
        if gps is not None:
            block[ExifTags.GPS.GPSLatitudeRef] = "N" if gps[0] >= 0 else "S"
            block[ExifTags.GPS.GPSLatitude] = _dms(gps[0])
            block[ExifTags.GPS.GPSLongitudeRef] = "E" if gps[1] >= 0 else "W"
            block[ExifTags.GPS.GPSLongitude] = _dms(gps[1])
        if gps_time is not None:
            block[ExifTags.GPS.GPSDateStamp] = gps_time.strftime("%Y:%m:%d")
            block[ExifTags.GPS.GPSTimeStamp] = (float(gps_time.hour), float(gps_time.minute), float(gps_time.second))
    out = io.BytesIO()
    has_metadata = gps is not None or gps_time is not None or local_time is not None
    image.save(out, format=fmt, **({"exif": exif} if has_metadata else {}))
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims ten billion pixels, with a tiny body: nothing may decode it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def half_an_hour_on_site(api: Api, **tech_fields: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """A technician who drove 20 minutes and has been at the customer's door for half an hour
    (an earlier technician, free again and as near, may be the one sent): (technician, job, phone)."""
    tech, job, phone = on_site_job(api, travel=timedelta(minutes=20), or_earlier=True, **tech_fields)
    api.clock.advance(minutes=30)
    return tech, job, phone


def upload(api, job_id, data, headers, name="photo.jpg", content_type="image/jpeg"):
    return api.client.post(f"/v1/jobs/{job_id}/photos", files={"file": (name, data, content_type)}, headers=headers)


def good_photo(api: Api) -> bytes:
    """Taken at the customer's a minute ago."""
    return image_bytes(gps=CUSTOMER, gps_time=api.clock.now() - timedelta(minutes=1))


def stored_files(settings) -> list[str]:
    root = settings.resolved_photo_dir
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []
