"""A request's fingerprint: what a retry under the same ``Idempotency-Key`` must repeat.

Pure functions over the buffered request, no database. ``of`` reads the body's meaning for
the two kinds of body the API takes (multipart uploads, JSON); ``raw`` is the bytes as sent,
the fallback for anything else or anything that does not parse (and what every key stored
before ``of`` existed holds). The choices, and why: docs/integration.md ("What counts as the
same request") and docs/decisions.md ("Outlet integration").
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header

# JSON bodies are small (DISPATCH_MAX_BODY_BYTES); a bigger one (only the photo route takes one
# that big, and refuses it) is not worth parsing into Python objects: fingerprinted raw.
JSON_CANONICAL_MAX_BYTES = 1024 * 1024
# Starlette refuses a form of more than 1,000 files or 1,000 fields (400); past that many parts
# the parse stops and the raw bytes decide, so 15 MB of tiny parts costs milliseconds, not seconds.
MULTIPART_MAX_PARTS = 2000


def of(method: str, path: str, query: bytes, content_type: str, body: bytes) -> str:
    """What a retry must repeat for its key to replay: the request's meaning, not its spelling.

    * ``multipart/form-data``: the parts in order, each as (field name, filename, content
      type, SHA-256 of its content), read by python-multipart as the routes read them. Not the
      boundary (clients pick a new one per attempt), not the framing or other part headers.
    * JSON (``application/json``, ``application/*+json``, up to ``JSON_CANONICAL_MAX_BYTES``):
      the parsed value written out with sorted keys and no spaces, so key order, whitespace and
      string escapes do not count; array order and the numbers' values (``1`` vs ``1.0``) do.
    * Anything else, and a body that does not parse as its content type says: the raw bytes
      with the whole ``Content-Type`` header (``raw``; the route refuses it anyway).

    Method, path and query string count in every case. Never raises on a bad body.
    """
    media_type, params = _media_type(content_type)
    if media_type == "multipart/form-data":
        parts = _multipart_parts(body, params.get("boundary"))
        if parts is not None:
            described = ";".join([media_type, *(f"{k}={v}" for k, v in sorted(params.items()) if k != "boundary")])
            return _digest(b"multipart/v1", method.encode(), path.encode(), query, described.encode(), parts)
    elif _is_json(media_type) and 0 < len(body) <= JSON_CANONICAL_MAX_BYTES:
        canonical = _canonical_json(body)
        if canonical is not None:
            return _digest(b"json/v1", method.encode(), path.encode(), query, media_type.encode(), canonical)
    return raw(method, path, query, content_type, body)


def raw(method: str, path: str, query: bytes, content_type: str, body: bytes) -> str:
    """The request byte for byte (and the fingerprint every key had before ``of``)."""
    return _digest(method.encode(), path.encode(), query, content_type.encode(), body)


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    media_type, params = parse_options_header(content_type)
    return (
        media_type.decode("latin-1").strip().lower(),
        {k.decode("latin-1").strip().lower(): v.decode("latin-1") for k, v in params.items()},
    )


def _is_json(media_type: str) -> bool:
    # What FastAPI reads as JSON (and then with json.loads, as here).
    major, _, minor = media_type.partition("/")
    return major == "application" and (minor == "json" or minor.endswith("+json"))


def _canonical_json(body: bytes) -> bytes | None:
    try:
        value = json.loads(body)
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    except (ValueError, RecursionError):  # not JSON (the route answers 422), too deep, too long a number
        return None


def _multipart_parts(body: bytes, boundary: str | None) -> bytes | None:
    """The parts of a multipart body as (name, filename, content type, SHA-256 of content),
    or None if it does not parse to its closing boundary.

    The parser runs over the buffered body and each part's content is hashed as it is found
    (memoryview slices, no copy of a multi-megabyte photo). Name and filename come from the
    part's (last) Content-Disposition and the content type from its first Content-Type, as
    Starlette reads them for the route.
    """
    if not boundary:
        return None
    described = hashlib.sha256()
    header_name, header_value = bytearray(), bytearray()
    part: dict[str, Any] = {}
    count, ended = 0, False

    def field(value: bytes | None) -> None:  # None (absent) and b"" (empty) differ
        if value is None:
            described.update(b"\x00")
        else:
            described.update(b"\x01" + len(value).to_bytes(8, "big"))
            described.update(value)

    def on_part_begin() -> None:
        nonlocal count
        count += 1
        if count > MULTIPART_MAX_PARTS:
            raise _TooManyParts
        part.clear()
        part["content"] = hashlib.sha256()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        name = bytes(header_name).lower()
        if name == b"content-disposition":
            part["disposition"] = bytes(header_value)
        elif name == b"content-type":
            part.setdefault("content_type", bytes(header_value).strip())
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part["content"].update(memoryview(data)[start:end])

    def on_part_end() -> None:
        _, options = parse_options_header(part.get("disposition"))
        described.update(b"part")
        field(options.get(b"name"))
        field(options.get(b"filename"))
        field(part.get("content_type"))
        field(part["content"].digest())

    def on_end() -> None:
        nonlocal ended
        ended = True

    try:
        parser = MultipartParser(
            boundary.encode("latin-1"),
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_part_data": on_part_data,
                "on_part_end": on_part_end,
                "on_end": on_end,
            },
        )
        parser.write(body)
        parser.finalize()
    except Exception:  # any parse failure: the raw bytes decide (never a 500 from here)
        return None
    return described.digest() if ended else None


class _TooManyParts(Exception):
    pass
