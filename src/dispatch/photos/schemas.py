from __future__ import annotations

from datetime import datetime

from pydantic import Field

from dispatch.photos.models import Photo, PhotoVerdict
from dispatch.schemas import ResponseBody


class PhotoPublic(ResponseBody):
    id: int
    job_id: int
    visit_number: int | None = Field(description="The visit the photo was taken on")
    sha256: str = Field(description="Of the file as uploaded")
    format: str = Field(description="What the upload decoded as: jpeg, png or webp")
    size_bytes: int
    width: int
    height: int
    taken_at: datetime | None = Field(description="The photo's own capture time (EXIF), if it has one")
    taken_lat: float | None = Field(description="Where the photo says it was taken (EXIF GPS), if it says")
    taken_lon: float | None
    verdict: PhotoVerdict = Field(
        description="`verified`: near the customer during the visit; `mismatch`: "
        "far away or at another time; `no_metadata`: nothing to check"
    )
    distance_m: float | None = Field(description="From the customer's address")
    time_difference_seconds: int | None = Field(description="Outside the visit's time window; 0 inside it")
    reasons: list[str]
    uploaded_by: str
    uploaded_at: datetime
    url: str = Field(description="The photo, without its EXIF (no location)")
    thumbnail_url: str

    @classmethod
    def of(cls, photo: Photo, visit_number: int | None) -> PhotoPublic:
        base = f"/v1/jobs/{photo.job_id}/photos/{photo.id}"
        return cls(
            id=photo.id,
            job_id=photo.job_id,
            visit_number=visit_number,
            sha256=photo.sha256,
            format=photo.format,
            size_bytes=photo.size_bytes,
            width=photo.width,
            height=photo.height,
            taken_at=photo.taken_at,
            taken_lat=photo.taken_lat,
            taken_lon=photo.taken_lon,
            verdict=photo.verdict,
            distance_m=photo.distance_m,
            time_difference_seconds=photo.time_difference_seconds,
            reasons=list(photo.reasons),
            uploaded_by=photo.uploaded_by,
            uploaded_at=photo.uploaded_at,
            url=f"{base}/image",
            thumbnail_url=f"{base}/thumbnail",
        )
