"""Photos as the API shows them: built here and nowhere else."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dispatch.photos.models import Photo
from dispatch.photos.schemas import PhotoPublic
from dispatch.visits import service as visits


def photos(session: Session, rows: list[Photo]) -> list[PhotoPublic]:
    numbers = {}
    for job_id in {p.job_id for p in rows}:
        numbers.update({v.id: v.number for v in visits.of_job(session, job_id)})
    return [PhotoPublic.of(p, numbers.get(p.visit_id)) for p in rows]  # type: ignore[arg-type]


def photo(session: Session, row: Photo) -> PhotoPublic:
    return photos(session, [row])[0]
