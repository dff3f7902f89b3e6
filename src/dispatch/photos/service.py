"""Sign-off photos: accept an upload, judge its EXIF against the visit, keep it once.

The order is what keeps records and files in step:

1. the job is checked (the caller's, still open, has had a visit) before any work is done;
2. the bytes are decoded and the served copy and thumbnail made (outside any transaction);
3. the files are stored (content-addressed, atomic); if that fails, nothing is written;
4. the row is written in the request's transaction, which checks the job again under its lock.

A failure after 3 leaves files no row points at; ``sweep`` removes those (``dispatch
sweep-photos``), after a grace period so it never races an upload between steps 3 and 4.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.auth.service import SYSTEM, Caller
from dispatch.clock import time_zone
from dispatch.config import Settings
from dispatch.errors import Conflict, DispatchError, NotFound, Unprocessable
from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.jobs import service as jobs
from dispatch.jobs.lifecycle import JobStatus
from dispatch.jobs.models import Job
from dispatch.photos import images, storage, verdict
from dispatch.photos.models import Photo
from dispatch.photos.storage import PhotoStore
from dispatch.technicians.models import Technician
from dispatch.visits import service as visits
from dispatch.visits.models import Visit

READ_CHUNK = 1024 * 1024
NO_PHOTOS = (JobStatus.cancelled, JobStatus.closed)


class TooLarge(DispatchError):
    status, code, title = 413, "too-large", "Request too large"


class StorageFailed(DispatchError):
    status, code, title = 503, "photo-storage-failed", "Photo storage unavailable"


def one_file_only(count: int) -> Unprocessable:
    """A form with two ``file`` parts is not one photo: which one was meant is not ours to guess."""
    return Unprocessable(
        f"send exactly one photo in the field `file` ({count} were sent)",
        code="one-file-only",
        errors=[{"loc": ["body", "file"], "msg": "exactly one file", "type": "value_error"}],
    )


def refused(exc: images.NotAnImage | images.TooManyPixels) -> Unprocessable:
    if isinstance(exc, images.TooManyPixels):
        return Unprocessable(
            f"the image is too large to decode: {exc}",
            code="too-many-pixels",
            max_pixels=exc.limit,
            errors=[{"loc": ["body", "file"], "msg": "too many pixels", "type": "value_error"}],
        )
    return Unprocessable(
        "the file is not a JPEG, PNG or WebP image that decodes",
        code="not-an-image",
        errors=[{"loc": ["body", "file"], "msg": "not a JPEG, PNG or WebP image", "type": "value_error"}],
    )


def _open_job(session: Session, job_id: int, caller: Caller, *, for_update: bool) -> tuple[Job, list[Visit]]:
    job = jobs.get(session=session, job_id=job_id, caller=caller, for_update=for_update)
    if job.status in NO_PHOTOS:
        raise Conflict(f"job {job_id} is {job.status.value}; it takes no more photos", code="job-closed")
    trips = [v for v in visits.of_job(session, job_id) if v.started or v.outcome is not None]
    if not trips:
        raise Conflict(f"job {job_id} has had no visit yet; photos are taken on site", code="no-visit")
    return job, trips


def check_upload(*, session: Session, job_id: int, caller: Caller) -> None:
    """Step 1: refuse early, before a large body is decoded or stored."""
    _open_job(session, job_id, caller, for_update=False)


def store_files(store: PhotoStore, processed: images.Processed) -> None:
    """Step 3. The same picture stored before is not written again."""
    try:
        store.put(storage.served_key(processed.sha256), processed.served)
        store.put(storage.thumbnail_key(processed.sha256), processed.thumbnail)
    except OSError as exc:
        raise StorageFailed("the photo could not be stored; try again", code="photo-storage-failed") from exc


def _window(visit: Visit, now: datetime) -> tuple[datetime, datetime]:
    start = visit.on_site_at or visit.en_route_at or visit.planned_at
    return start, visit.left_at or now


def _visit_for(trips: list[Visit], taken_at: datetime | None, now: datetime, slack: timedelta) -> Visit:
    """The visit the photo was taken on: the one whose window holds its capture time, else the latest."""
    if taken_at is not None:
        for visit in reversed(trips):
            start, end = _window(visit, now)
            if start - slack <= taken_at <= end + slack:
                return visit
    return trips[-1]


def _capture_time(session: Session, metadata: images.Metadata, visit: Visit) -> datetime | None:
    """EXIF times without a zone are the phone's wall clock: read them in the technician's zone."""
    if metadata.taken_at is not None or metadata.taken_at_local is None:
        return metadata.taken_at
    zone = "UTC"
    if visit.technician_id is not None:
        zone = session.scalar(select(Technician.timezone).where(Technician.id == visit.technician_id)) or "UTC"
    try:
        return metadata.taken_at_local.replace(tzinfo=time_zone(zone)).astimezone(UTC)
    except (KeyError, ValueError, OverflowError):
        return None


def record(
    *, session: Session, job_id: int, caller: Caller, processed: images.Processed, now: datetime, settings: Settings
) -> tuple[Photo, bool]:
    """Step 4: the photo's row, its verdict, and the timeline. The same picture uploaded again for
    the same job is the same photo (False: nothing new was written)."""
    job, trips = _open_job(session, job_id, caller, for_update=True)
    existing = session.scalar(select(Photo).where(Photo.job_id == job_id, Photo.sha256 == processed.sha256))
    if existing is not None:
        return existing, False
    slack = timedelta(minutes=settings.photo_time_slack_minutes)
    metadata = processed.metadata
    visit = _visit_for(trips, metadata.taken_at, now, slack)
    taken_at = _capture_time(session, metadata, visit)
    if taken_at is not None and metadata.taken_at is None:  # the zone is known only now: choose again
        visit = _visit_for(trips, taken_at, now, slack)
    judgement = verdict.judge(
        taken_at=taken_at,
        taken_lat=metadata.lat,
        taken_lon=metadata.lon,
        customer=(job.lat, job.lon) if job.lat is not None and job.lon is not None else None,
        window=_window(visit, now),
        max_distance_m=settings.photo_max_distance_m,
        slack=slack,
    )
    photo = Photo(
        job_id=job_id,
        visit_id=visit.id,
        sha256=processed.sha256,
        format=processed.format,
        size_bytes=processed.size_bytes,
        width=processed.width,
        height=processed.height,
        taken_at=taken_at,
        taken_lat=metadata.lat,
        taken_lon=metadata.lon,
        verdict=judgement.verdict,
        distance_m=judgement.distance_m,
        time_difference_seconds=judgement.time_difference_seconds,
        reasons=judgement.reasons,
        uploaded_by=caller.actor,
        uploaded_at=now,
    )
    session.add(photo)
    session.flush()
    events.record(
        session=session,
        job_id=job_id,
        type=EventType.photo_uploaded,
        actor=caller.actor,
        now=now,
        occurred_at=taken_at if taken_at is not None and taken_at <= now else None,
        photo_id=photo.id,
        sha256=photo.sha256,
        format=photo.format,
        size_bytes=photo.size_bytes,
        visit_number=visit.number,
    )
    events.record(
        session=session,
        job_id=job_id,
        type=EventType.photo_verdict,
        actor=SYSTEM.actor,
        now=now,
        photo_id=photo.id,
        verdict=photo.verdict.value,
        distance_m=photo.distance_m,
        time_difference_seconds=photo.time_difference_seconds,
        reasons=photo.reasons,
    )
    return photo, True


def list_photos(*, session: Session, job_id: int, caller: Caller) -> list[Photo]:
    jobs.get(session=session, job_id=job_id, caller=caller)
    return list(session.scalars(select(Photo).where(Photo.job_id == job_id).order_by(Photo.id)))


def get(*, session: Session, job_id: int, photo_id: int, caller: Caller) -> Photo:
    jobs.get(session=session, job_id=job_id, caller=caller)
    photo = session.get(Photo, photo_id)
    if photo is None or photo.job_id != job_id:
        raise NotFound(f"job {job_id} has no photo {photo_id}", code="photo-not-found")
    return photo


def read(store: PhotoStore, key: str) -> bytes:
    try:
        return store.get(key)
    except KeyError:
        raise NotFound("the photo's file is missing from storage", code="photo-file-missing") from None
    except OSError as exc:
        raise StorageFailed("the photo could not be read; try again", code="photo-storage-failed") from exc


# --- orphans ---------------------------------------------------------------------------------


def sweep(*, session: Session, store: PhotoStore, now: datetime, grace: timedelta, dry_run: bool = False) -> list[str]:
    """Delete stored files no photo row points at (and leftovers of interrupted writes), if they
    are older than ``grace``. Returns the keys removed (or that would be)."""
    candidates = [o for o in store.objects() if o.modified_at <= now - grace]
    shas = {sha for o in candidates if (sha := storage.sha_of_key(o.key)) is not None}
    referenced: set[str] = set()
    listed = sorted(shas)
    for start in range(0, len(listed), 500):
        chunk = listed[start : start + 500]
        referenced.update(session.scalars(select(Photo.sha256).where(Photo.sha256.in_(chunk)).distinct()))
    removed = [o.key for o in candidates if storage.sha_of_key(o.key) not in referenced]
    if not dry_run:
        for key in removed:
            store.delete(key)
    return removed
