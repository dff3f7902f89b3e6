"""What an uploaded file really is, decided by decoding it (never by its name or declared type),
and the copies we serve: EXIF (GPS included) stripped, and a thumbnail.

Pure functions over bytes, no database and no storage, so they run on a worker thread and
are tested on their own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
SERVED_QUALITY = 85
THUMBNAIL_QUALITY = 80


class NotAnImage(ValueError):
    """The bytes do not decode as a JPEG, PNG or WebP image."""


class TooManyPixels(ValueError):
    """The image has more pixels than we are willing to decode: more than the pixel limit (a
    decompression bomb), or more than its format can be decoded with in the memory budget."""

    def __init__(self, width: int, height: int, limit: int, why: str = "") -> None:
        super().__init__(why or f"{width} x {height} pixels is more than the {limit} allowed")
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
    served: bytes  # JPEG, upright, no EXIF, at most the served pixel count
    thumbnail: bytes  # JPEG, longest side at most the thumbnail size


MB = 1024 * 1024
DEFAULT_SERVED_MAX_PIXELS = 13_000_000
DEFAULT_BUDGET_BYTES = 100 * MB


def process(
    data: bytes,
    *,
    max_pixels: int,
    thumbnail_px: int,
    served_max_pixels: int = DEFAULT_SERVED_MAX_PIXELS,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> Processed:
    """Decode an upload completely and build what we keep, in bounded memory. Raises
    ``NotAnImage`` or ``TooManyPixels``; judges the declared size before decoding a single pixel.

    Memory is pixels x bytes per pixel x copies held at once, so: a JPEG is decoded already
    reduced (DCT scaling) to about the served size; each later step (flatten, reduce, turn
    upright) makes one copy and drops the one before; and an image whose plan would still hold
    more than ``budget_bytes`` at its peak (a PNG or WebP cannot be decoded reduced) is refused
    before it is decoded."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:  # beyond twice Pillow's own limit
        raise TooManyPixels(0, 0, max_pixels) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise NotAnImage(str(exc)) from exc
    try:
        width, height = image.size
        if width * height > max_pixels:
            raise TooManyPixels(width, height, max_pixels)
        kind = (image.format or "").lower()
        # A PNG's EXIF may follow its pixels, and Pillow decodes the whole image to look for it:
        # there, unless the header had it, the plan assumes the photo must be turned upright.
        known = image.format != "PNG" or "exif" in image.info
        turn = _orientation(image) in _UPRIGHT if known else True
        chosen = plan(image, data, served_max_pixels=served_max_pixels, budget_bytes=budget_bytes, turn=turn)
        if chosen.scale > 1:
            image.draft(None, (max(1, width // chosen.scale), max(1, height // chosen.scale)))
            if image.size != _pixels_size((width, height), chosen.scale):  # a shape libjpeg cannot scale so
                raise TooManyPixels(width, height, max_pixels, f"{width} x {height} pixels cannot be decoded reduced")
        try:
            image.load()  # verify() would not decode; a truncated or corrupt body fails here
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise NotAnImage(str(exc)) from exc
        metadata = read_metadata(image)
        orientation = _orientation(image)
        work = _step(image, _flatten(image))
        work = _step(work, _reduced(work, served_max_pixels))
        if orientation in _UPRIGHT:
            work = _step(work, work.transpose(_UPRIGHT[orientation]))
        served = io.BytesIO()
        work.save(served, format="JPEG", quality=SERVED_QUALITY)  # no exif= : none of the original's metadata
        work.thumbnail((thumbnail_px, thumbnail_px))
        thumb = io.BytesIO()
        work.save(thumb, format="JPEG", quality=THUMBNAIL_QUALITY)
        work.close()
    finally:
        image.close()
        release_memory()
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


def _step(previous: Image.Image, following: Image.Image) -> Image.Image:
    """Go on with ``following`` and free ``previous`` now: one copy held at a time."""
    if following is not previous:
        previous.close()
    return following


# --- memory ------------------------------------------------------------------------------------

# EXIF orientation -> the transposition that turns the pixels upright (EXIF 2.32, 4.6.4 A).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What libwebp holds beside the decoded image while Pillow decodes a WebP: its canvas, the previous
# frame's and the frame handed to Pillow as bytes (measured with Pillow 13 / libwebp 1.6).
_WEBP_DECODER_BYTES_PER_PIXEL = 12
# Encoder and decoder state, Python objects: measured under 2 MB beside the pixels.
_OVERHEAD_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Plan:
    scale: int  # JPEG DCT scaling: decoded at 1/scale of each side
    peak_bytes: int  # the most held at once, estimated from the header alone


def plan(image: Image.Image, data: bytes, *, served_max_pixels: int, budget_bytes: int, turn: bool = True) -> Plan:
    """How to decode ``image`` (opened, not loaded) within ``budget_bytes``, or ``TooManyPixels``.
    A JPEG is decoded at the smallest DCT scale that fits the served size (a larger one, so a
    smaller served copy, if the budget needs it); other formats only at full size."""
    width, height = image.size
    scales = (1, 2, 4, 8) if image.format == "JPEG" else (1,)
    fitting = [s for s in scales if _pixels(width, height, s) <= served_max_pixels] or [scales[-1]]
    for scale in fitting:
        peak = _peak_bytes(image, data, scale, served_max_pixels, turn)
        if peak <= budget_bytes:
            return Plan(scale, peak)
    pixels = width * height
    limit = max(1, int(pixels * budget_bytes / peak))
    raise TooManyPixels(
        width,
        height,
        limit,
        f"{width} x {height} pixels is more than a {image.format} {image.mode} image may have here (about"
        f" {limit:,}): decoding it would take about {peak // MB} MB, and a photo may take {budget_bytes // MB} MB",
    )


def _pixels(width: int, height: int, scale: int) -> int:
    return -(-width // scale) * -(-height // scale)


def _stored(mode: str) -> int:
    """Bytes per pixel Pillow holds for an image of this mode (RGB takes four, like RGBA)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _peak_bytes(image: Image.Image, data: bytes, scale: int, served_max_pixels: int, turn: bool) -> int:
    """The step that holds the most: decoding (with the decoder's own buffers), flattening,
    reducing to the served size, turning upright; plus the upload's bytes all along."""
    decoded = _pixels(*image.size, scale)
    held = _stored(image.mode) * decoded
    decoder = 0
    if image.format == "JPEG" and _full_coefficient_buffer(image, data):
        # Progressive and multi-scan JPEGs keep every DCT coefficient (2 bytes per sample) at full
        # size while they decode, whatever the scale.
        decoder = 2 * _samples(image)
    elif image.format == "WEBP":
        decoder = _WEBP_DECODER_BYTES_PER_PIXEL * decoded
    steps = [held + decoder]
    flat_bytes = 1 if image.mode in ("1", "L") else 4
    if image.mode not in ("RGB", "L"):
        retained = decoder if image.format == "WEBP" else 0  # freed only when the original is closed
        alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
        widened = 4 * decoded if image.mode in ("P", "PA") and alpha else 0  # converted to RGBA first
        steps.append(held + retained + widened + flat_bytes * decoded + (decoded if alpha else 0))
    served = decoded
    if decoded > served_max_pixels:
        factor = _reduction(decoded, served_max_pixels)
        served = _pixels(*_pixels_size(image.size, scale), factor)
        steps.append(flat_bytes * (decoded + served))
    if turn:
        steps.append(2 * flat_bytes * served)
    steps.append(flat_bytes * served + served)  # encoding: the image and the JPEG written out
    return _OVERHEAD_BYTES + len(data) + max(steps)


def _pixels_size(size: tuple[int, int], scale: int) -> tuple[int, int]:
    return -(-size[0] // scale), -(-size[1] // scale)


def _samples(image: Image.Image) -> int:
    """Samples over all the JPEG's components, from their sampling factors (SOF)."""
    layers = getattr(image, "layer", None) or [(None, 1, 1, None)] * len(image.getbands())
    h_max = max(h for _, h, _, _ in layers)
    v_max = max(v for _, _, v, _ in layers)
    width, height = image.size
    return sum(-(-width * h // h_max) * -(-height * v // v_max) for _, h, v, _ in layers)


def _full_coefficient_buffer(image: Image.Image, data: bytes) -> bool:
    """Whether libjpeg must buffer the whole image's coefficients: a progressive JPEG, or one whose
    first scan does not hold every component (a multi-scan baseline JPEG). Unknown: assume so."""
    if image.info.get("progressive") or image.info.get("progression"):
        return True
    components = _first_scan_components(data)
    return components is None or components < len(getattr(image, "layer", ()) or image.getbands())


def _first_scan_components(data: bytes) -> int | None:
    """The number of components in the first scan (the byte after the SOS segment's length), found
    by walking the JPEG's marker segments by their lengths, so embedded thumbnails are skipped."""
    at = 2  # after SOI
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            at += 2
            continue
        if marker == 0xDA:
            return data[at + 4] if at + 4 < len(data) else None
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def _reduction(pixels: int, target: int) -> int:
    """The smallest whole factor that brings ``pixels`` to ``target`` or below."""
    factor = max(2, math.isqrt(max(pixels // target, 1)))
    while pixels / (factor * factor) > target:
        factor += 1
    return factor


def _reduced(image: Image.Image, served_max_pixels: int) -> Image.Image:
    """At most the served pixel count, by a whole factor (``reduce``: box filter, no second
    full-size buffer, unlike ``resize``, which first resamples rows into an intermediate)."""
    if image.width * image.height <= served_max_pixels:
        return image
    return image.reduce(_reduction(image.width * image.height, served_max_pixels))


def _orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation)
        return int(value) if value is not None else None
    except Exception:
        return None  # a malformed EXIF block: upright as stored


_malloc_trim: Callable[[int], int] | None = None
_mallopt: Callable[[int, int], int] | None = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _malloc_trim, _mallopt = _libc.malloc_trim, _libc.mallopt
except (OSError, AttributeError):  # not glibc (musl, macOS): their allocators return large blocks
    pass
if _mallopt is not None:
    # glibc raises its mmap threshold to the size of each large block freed, so after the first
    # image Pillow's 16 MB blocks come from the heap arenas: kept after use, and not shared between
    # threads, so concurrent decodes added up to more than their budgets. A fixed threshold keeps
    # every block of 4 MB or more in its own mapping, returned to the system when it is freed.
    _M_MMAP_THRESHOLD = -3
    _mallopt(_M_MMAP_THRESHOLD, 4 * 1024 * 1024)


def release_memory() -> None:
    """After a decode: hand what the heap arenas keep of the smaller buffers back to the system."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB (or L) for the JPEG we serve. Transparent parts (a PNG or WebP with alpha) go on white,
    as a viewer shows them, not on whatever colour the invisible pixels happened to hold (often
    black). RGBA and LA are pasted straight onto the white (no converted copy in between)."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("PA", "P") and (image.mode == "PA" or "transparency" in image.info):
        rgba = image.convert("RGBA")
        image.close()
        image = rgba
    if image.mode in ("RGBA", "LA"):
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
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
