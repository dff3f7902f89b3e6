from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from sqlalchemy.orm import Session

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import DatabaseDep, IdPath, NowDep, SettingsDep, UnitOfWork, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.paging import Page
from dispatch.photos import images, public, service, storage
from dispatch.photos.schemas import PhotoPublic
from dispatch.photos.storage import LocalPhotoStore, PhotoStore

router = APIRouter(
    prefix="/v1/jobs/{job_id}/photos", tags=["photos"], responses=problem_responses(400, 401, 403, 413, 422)
)
# Photos show the inside of customers' homes: staff and the job's own technician, not outlets.
Viewers = Depends(allow(Role.dispatcher, Role.supervisor, Role.technician))
# The one route that takes a large body: the photo's own limit is checked exactly as it is read;
# the request as a whole may add this much multipart framing around it.
UPLOAD_PATH = r"/v1/jobs/[^/]+/photos/?"
MULTIPART_ALLOWANCE = 64 * 1024
JPEG: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The image as JPEG, without EXIF",
    }
}


async def get_photo_store(request: Request) -> PhotoStore:
    """The app's photo store: a local directory unless one was set on the app (S3, tests)."""
    state = request.app.state
    if getattr(state, "photo_store", None) is None:
        state.photo_store = LocalPhotoStore(state.settings.resolved_photo_dir)
    return state.photo_store


PhotoStoreDep = Annotated[PhotoStore, Depends(get_photo_store)]


def _decode_slots(request: Request) -> anyio.CapacityLimiter:
    """Uploads decoded at once in this process (``DISPATCH_PHOTO_CONCURRENT_DECODES``): each may
    hold up to the decode budget, so this bounds the process's photo memory; the rest wait."""
    state = request.app.state
    if getattr(state, "photo_decode_slots", None) is None:
        state.photo_decode_slots = anyio.CapacityLimiter(state.settings.photo_concurrent_decodes)
    return state.photo_decode_slots


async def _read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The upload's bytes, read in chunks and refused as soon as they pass the limit."""
    chunks, size = [], 0
    while chunk := await file.read(service.READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise service.TooLarge(f"the photo is larger than {max_bytes} bytes", code="too-large", max_bytes=max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    status_code=201,
    response_model=PhotoPublic,
    responses={
        **problem_responses(404, 409, 503),
        200: {"description": "The same picture, already uploaded", "model": PhotoPublic},
    },
)
async def upload_photo(
    job_id: IdPath,
    file: Annotated[UploadFile, File(description="The photo: JPEG, PNG or WebP (judged by its content)")],
    request: Request,
    response: Response,
    database: DatabaseDep,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    store: PhotoStoreDep,
    caller: Annotated[Caller, Depends(allow(Role.technician))],
) -> PhotoPublic:
    """A sign-off photo from the technician's phone. Its own capture time and GPS (EXIF) are
    checked against the visit: `verified`, `mismatch` (with the distance and time difference) or
    `no_metadata`. The copy served back has no EXIF. Uploading the same picture again answers
    200 with the photo already recorded."""

    def check() -> None:
        with database.transaction(write=False) as session:
            service.check_upload(session=session, job_id=job_id, caller=caller)

    await anyio.to_thread.run_sync(check)
    files = (await request.form()).getlist("file")  # the form FastAPI already parsed
    if len(files) != 1:
        raise service.one_file_only(len(files))
    decode = functools.partial(
        images.process,
        max_pixels=settings.photo_max_pixels,
        thumbnail_px=settings.photo_thumbnail_px,
        served_max_pixels=settings.photo_served_max_pixels,
        budget_bytes=settings.photo_decode_budget_mb * images.MB,
    )
    async with _decode_slots(request):  # the bytes are read into memory only once it is our turn
        data = await _read_upload(file, settings.photo_max_bytes)
        try:
            processed = await anyio.to_thread.run_sync(decode, data)
        except (images.NotAnImage, images.TooManyPixels) as exc:
            raise service.refused(exc) from None
        del data  # the upload's bytes are not kept past this point
    await anyio.to_thread.run_sync(service.store_files, store, processed)

    def work(session: Session) -> tuple[PhotoPublic, bool]:
        photo, created = service.record(
            session=session, job_id=job_id, caller=caller, processed=processed, now=now, settings=settings
        )
        return public.photo(session, photo), created

    photo, created = await uow.run(work)
    response.status_code = 201 if created else 200
    if created:
        response.headers["Location"] = f"/v1/jobs/{job_id}/photos/{photo.id}"
    return photo


@router.get("", response_model=Page[PhotoPublic], responses=problem_responses(404))
async def list_job_photos(job_id: IdPath, uow: UnitOfWorkDep, caller: Annotated[Caller, Viewers]) -> Page[PhotoPublic]:
    """The job's photos with their verdicts, oldest first (a job has a handful)."""
    return await uow.run(
        lambda session: Page[PhotoPublic](
            items=public.photos(session, service.list_photos(session=session, job_id=job_id, caller=caller))
        )
    )


@router.get("/{photo_id}", response_model=PhotoPublic, responses=problem_responses(404))
async def get_job_photo(
    job_id: IdPath, photo_id: IdPath, uow: UnitOfWorkDep, caller: Annotated[Caller, Viewers]
) -> PhotoPublic:
    return await uow.run(
        lambda session: public.photo(
            session, service.get(session=session, job_id=job_id, photo_id=photo_id, caller=caller)
        )
    )


async def _file(
    job_id: int, photo_id: int, uow: UnitOfWork, caller: Caller, store: PhotoStore, key_of: Callable[[str], str]
) -> Response:
    photo = await uow.run(lambda session: service.get(session=session, job_id=job_id, photo_id=photo_id, caller=caller))
    content = await anyio.to_thread.run_sync(service.read, store, key_of(photo.sha256))
    return Response(
        content=content,
        media_type="image/jpeg",
        headers={
            "Cache-Control": "private, max-age=31536000, immutable",
            "ETag": f'"{photo.sha256}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/{photo_id}/image", response_class=Response, responses={**JPEG, **problem_responses(404, 503)})
async def get_job_photo_image(
    job_id: IdPath, photo_id: IdPath, uow: UnitOfWorkDep, store: PhotoStoreDep, caller: Annotated[Caller, Viewers]
) -> Response:
    """The photo as JPEG, upright, with no EXIF: its GPS position is not served."""
    return await _file(job_id, photo_id, uow, caller, store, storage.served_key)


@router.get("/{photo_id}/thumbnail", response_class=Response, responses={**JPEG, **problem_responses(404, 503)})
async def get_job_photo_thumbnail(
    job_id: IdPath, photo_id: IdPath, uow: UnitOfWorkDep, store: PhotoStoreDep, caller: Annotated[Caller, Viewers]
) -> Response:
    """A small JPEG for the console."""
    return await _file(job_id, photo_id, uow, caller, store, storage.thumbnail_key)
