"""Where photo files live, behind a small interface so the local directory can be swapped for
an S3-compatible bucket (see docs/photos.md).

Keys are made by us from the content hash (``photos/ab/<sha256>.jpg``); nothing a client sends,
file names included, ever becomes part of a path.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEY = re.compile(r"(photos|thumbs)/[0-9a-f]{2}/([0-9a-f]{64})\.jpg")
# What an interrupted write leaves behind; the sweep removes these too.
_LEFTOVER = re.compile(r"(photos|thumbs)/[0-9a-f]{2}/\.tmp-[0-9a-f]{32}")


def served_key(sha256: str) -> str:
    return _key("photos", sha256)


def thumbnail_key(sha256: str) -> str:
    return _key("thumbs", sha256)


def _key(kind: str, sha256: str) -> str:
    if not _SHA256.fullmatch(sha256):
        raise ValueError("not a SHA-256 hex digest")
    return f"{kind}/{sha256[:2]}/{sha256}.jpg"


def sha_of_key(key: str) -> str | None:
    match = _KEY.fullmatch(key)
    return match.group(2) if match else None


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified_at: datetime


class PhotoStore(Protocol):
    """What the photo service needs from storage. ``put`` is atomic (a reader sees the whole
    object or nothing) and idempotent (content-addressed: putting a key again is a no-op)."""

    def put(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key``; False if it was there already."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; ``KeyError`` if there is none."""
        ...

    def delete(self, key: str) -> None: ...

    def objects(self) -> Iterator[StoredObject]:
        """Everything stored (for the orphan sweep), including leftovers of interrupted writes."""
        ...


class LocalPhotoStore:
    """A directory on local disk (``DISPATCH_PHOTO_DIR``). Writes go to a temporary file in the
    same directory, are flushed to disk, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if sha_of_key(key) is None and not _LEFTOVER.fullmatch(key):
            raise ValueError(f"not a photo key: {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            with open(temporary, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def objects(self) -> Iterator[StoredObject]:
        if not self.root.exists():
            return
        for kind in ("photos", "thumbs"):
            for path in sorted((self.root / kind).glob("*/*")):
                if path.is_file():
                    modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
                    yield StoredObject(key=path.relative_to(self.root).as_posix(), modified_at=modified)
