"""Sign-off photos from the technician's phone: hostile until proven otherwise. Real JPEGs with
and without EXIF GPS are judged against the visit; anything that is not a photo of a job the
technician holds is refused with nothing stored; files and rows never get out of step."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from support.api import CUSTOMER
from support.database import count_rows
from support.photos import KRAKOW, good_photo, half_an_hour_on_site, image_bytes, png_bomb, stored_files, upload
from support.problems import assert_problem
from support.workflow import add_outlet, event_types, events_of, tap

from dispatch.photos import service as photo_service
from dispatch.photos.models import Photo
from dispatch.photos.storage import LocalPhotoStore


def photo_rows(api) -> int:
    return count_rows(api.database, Photo)


# The verdict -----------------------------------------------------------------------------------


def test_a_photo_taken_at_the_customers_during_the_visit_is_verified(api, settings):
    _, job, phone = half_an_hour_on_site(api)
    data = good_photo(api)
    r = upload(api, job["id"], data, phone)
    assert r.status_code == 201, r.text
    photo = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}/photos/{photo['id']}"
    assert (photo["verdict"], photo["format"], photo["visit_number"]) == ("verified", "jpeg", 1)
    assert photo["distance_m"] < 5 and photo["time_difference_seconds"] == 0
    assert (photo["width"], photo["height"], photo["size_bytes"]) == (64, 48, len(data))
    assert abs(photo["taken_lat"] - CUSTOMER[0]) < 1e-4 and photo["taken_at"] is not None
    assert photo["sha256"] == hashlib.sha256(data).hexdigest()
    types = event_types(api, job)
    assert "photo_uploaded" in types and "photo_verdict" in types
    verdict = events_of(api, job, "photo_verdict")[0]
    assert verdict["data"]["verdict"] == "verified"
    # Files are named by their content, nothing else.
    assert stored_files(settings) == [
        f"photos/{photo['sha256'][:2]}/{photo['sha256']}.jpg",
        f"thumbs/{photo['sha256'][:2]}/{photo['sha256']}.jpg",
    ]


def test_the_served_copy_and_thumbnail_carry_no_location(api):
    _, job, phone = half_an_hour_on_site(api)
    photo = upload(api, job["id"], image_bytes(gps=CUSTOMER, gps_time=api.clock.now(), size=(800, 600)), phone).json()
    for path, longest in ((photo["url"], 800), (photo["thumbnail_url"], 320)):
        r = api.get(path)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.headers["etag"] == f'"{photo["sha256"]}"'
        served = Image.open(io.BytesIO(r.content))
        assert served.format == "JPEG" and max(served.size) == longest
        assert dict(served.getexif()) == {}  # no GPS, no camera, no time
    assert api.get(photo["url"], headers=phone).status_code == 200  # the technician sees their own
    # ... and the verdict stays in the record.
    assert api.get(f"/v1/jobs/{job['id']}/photos/{photo['id']}").json()["verdict"] == "verified"
    assert [p["id"] for p in api.get(f"/v1/jobs/{job['id']}/photos").json()["items"]] == [photo["id"]]


def test_a_photo_taken_far_away_is_a_mismatch_with_the_distance(api):
    _, job, phone = half_an_hour_on_site(api)
    photo = upload(api, job["id"], image_bytes(gps=KRAKOW, gps_time=api.clock.now()), phone).json()
    assert photo["verdict"] == "mismatch"
    assert 250_000 < photo["distance_m"] < 260_000
    assert photo["time_difference_seconds"] == 0
    assert any("km from the customer" in reason for reason in photo["reasons"])


def test_a_photo_taken_at_another_time_is_a_mismatch_with_the_time_difference(api):
    _, job, phone = half_an_hour_on_site(api)
    two_days_ago = api.clock.now() - timedelta(days=2)
    photo = upload(api, job["id"], image_bytes(gps=CUSTOMER, gps_time=two_days_ago), phone).json()
    assert photo["verdict"] == "mismatch"
    on_site_at = api.clock.now() - timedelta(minutes=30)
    assert photo["time_difference_seconds"] == int((on_site_at - two_days_ago).total_seconds())
    assert any("before the visit began" in reason for reason in photo["reasons"])


def test_a_few_minutes_outside_the_visit_are_within_the_slack(api):
    _, job, phone = half_an_hour_on_site(api)
    just_before = api.clock.now() - timedelta(minutes=30 + 10)  # ten minutes before arriving
    photo = upload(api, job["id"], image_bytes(gps=CUSTOMER, gps_time=just_before), phone).json()
    assert photo["verdict"] == "verified" and photo["time_difference_seconds"] == 600


def test_a_photo_without_metadata_says_so(api):
    _, job, phone = half_an_hour_on_site(api)
    photo = upload(api, job["id"], image_bytes(), phone).json()
    assert photo["verdict"] == "no_metadata"
    assert photo["taken_at"] is None and photo["taken_lat"] is None and photo["distance_m"] is None


def test_a_wall_clock_capture_time_is_read_in_the_technicians_time_zone(api):
    _, job, phone = half_an_hour_on_site(api, shift={"start": "00:00", "end": "23:59", "timezone": "Europe/Warsaw"})
    warsaw_wall_clock = (api.clock.now() + timedelta(hours=1)).replace(tzinfo=None)  # UTC+1 in March
    photo = upload(api, job["id"], image_bytes(gps=CUSTOMER, local_time=warsaw_wall_clock), phone).json()
    assert photo["verdict"] == "verified", photo
    assert photo["taken_at"].startswith(api.clock.now().isoformat()[:16])
    with_offset = upload(
        api,
        job["id"],
        image_bytes(gps=CUSTOMER, local_time=warsaw_wall_clock, offset="+01:00", colour=(1, 2, 3)),
        phone,
    ).json()
    assert with_offset["verdict"] == "verified"


def test_png_and_webp_are_photos_too(api):
    _, job, phone = half_an_hour_on_site(api)
    for fmt, colour in (("PNG", (10, 10, 10)), ("WEBP", (20, 20, 20))):
        r = upload(
            api,
            job["id"],
            image_bytes(fmt=fmt, colour=colour),
            phone,
            name="x.bin",
            content_type="application/octet-stream",
        )
        assert r.status_code == 201, r.text
        assert r.json()["format"] == fmt.lower()


def test_a_transparent_png_is_served_on_white_not_black(api):
    _, job, phone = half_an_hour_on_site(api)
    for fmt, mode in (("PNG", "RGBA"), ("PNG", "LA"), ("WEBP", "RGBA")):
        image = Image.new(mode, (40, 40), (0,) * len(mode))  # every pixel invisible, black underneath
        image.paste({"RGBA": (200, 30, 30, 255), "LA": (90, 255)}[mode], (0, 0, 20, 40))  # the left half drawn
        raw = io.BytesIO()
        image.save(raw, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        r = upload(api, job["id"], raw.getvalue(), phone)
        assert r.status_code == 201, r.text
        served = Image.open(io.BytesIO(api.get(r.json()["url"]).content)).convert("RGB")
        assert min(served.getpixel((35, 20))) > 240, (fmt, mode, served.getpixel((35, 20)))  # the clear half: white
        assert max(served.getpixel((5, 20))) < 250  # the drawn half keeps its colour


def test_the_same_photo_twice_is_stored_once(api, settings):
    _, job, phone = half_an_hour_on_site(api)
    data = good_photo(api)
    first = upload(api, job["id"], data, phone)
    again = upload(api, job["id"], data, phone, name="retry.jpg")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert photo_rows(api) == 1 and len(stored_files(settings)) == 2


# Hostile uploads: a clear 4xx, nothing stored ---------------------------------------------------


def assert_nothing_stored(api, settings):
    assert photo_rows(api) == 0
    assert stored_files(settings) == []


def test_a_file_that_is_not_an_image_is_refused_whatever_it_is_called(api, settings):
    _, job, phone = half_an_hour_on_site(api)
    for data in (b"#!/bin/sh\nrm -rf /\n", b"GIF89a" + b"\x00" * 100, good_photo(api)[:200]):
        r = upload(api, job["id"], data, phone, name="holiday.jpg", content_type="image/jpeg")
        assert_problem(r, 422, "not-an-image")
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, format="GIF")
    assert upload(api, job["id"], gif.getvalue(), phone).json()["code"] == "not-an-image"
    assert_nothing_stored(api, settings)


def test_a_photo_over_the_size_limit_is_413(api, settings):
    _, job, phone = half_an_hour_on_site(api)
    settings.photo_max_bytes = 2_000
    r = upload(api, job["id"], image_bytes(size=(400, 300), colour=(5, 5, 5)) + b"\x00" * 3_000, phone)
    assert_problem(r, 413, "too-large")
    settings.photo_max_bytes = 15 * 1024 * 1024
    # A body past the limit plus multipart framing is refused before it is read at all.
    r = upload(api, job["id"], b"\xff" * (15 * 1024 * 1024 + 128 * 1024), phone)
    assert_problem(r, 413, "too-large")
    assert_nothing_stored(api, settings)


def test_a_decompression_bomb_is_refused_before_it_is_decoded(api, settings):
    _, job, phone = half_an_hour_on_site(api)
    r = upload(api, job["id"], png_bomb(), phone, name="bomb.png", content_type="image/png")
    assert_problem(r, 422, "too-many-pixels")
    settings.photo_max_pixels = 100_000
    r = upload(api, job["id"], image_bytes(size=(400, 300)), phone)  # 120,000 pixels
    assert_problem(r, 422, "too-many-pixels")
    assert r.json()["max_pixels"] == 100_000
    assert_nothing_stored(api, settings)


def test_a_file_name_never_reaches_the_file_system(api, settings):
    _, job, phone = half_an_hour_on_site(api)
    r = upload(api, job["id"], good_photo(api), phone, name="../../../etc/passwd")
    assert r.status_code == 201
    assert all(f.startswith(("photos/", "thumbs/")) and "passwd" not in f for f in stored_files(settings))


def test_a_technician_cannot_upload_to_a_job_that_is_not_theirs(api, settings):
    _, job, _ = half_an_hour_on_site(api)
    stranger = api.technician(name="Stranger", lat=52.3, lon=21.1)
    r = upload(api, job["id"], good_photo(api), api.as_technician(stranger["id"]))
    assert_problem(r, 404, "job-not-found")
    assert upload(api, job["id"], good_photo(api), api.headers("dispatcher")).status_code == 403
    assert_nothing_stored(api, settings)


def test_photos_are_taken_on_a_visit(api, settings):
    tech = api.technician()
    job = api.job()
    api.post(f"/v1/jobs/{job['id']}/dispatch")
    r = upload(api, job["id"], good_photo(api), api.as_technician(tech["id"]))
    assert_problem(r, 409, "no-visit")
    assert_nothing_stored(api, settings)


def test_outlets_do_not_see_photos_of_customers_homes(api):
    outlet = add_outlet(api, "o1", "Outlet")
    tech = api.technician()
    job = api.job(headers=api.as_outlet(outlet["id"]))
    api.post(f"/v1/jobs/{job['id']}/dispatch")
    phone = api.as_technician(tech["id"])
    tap(api, job, "on_site", phone=phone)
    photo = upload(api, job["id"], good_photo(api), phone).json()
    assert api.get(photo["url"], headers=api.as_outlet(outlet["id"])).status_code == 403


# Files and rows stay in step -------------------------------------------------------------------


class BrokenStore(LocalPhotoStore):
    def put(self, key: str, data: bytes) -> bool:
        raise OSError("disk full")


def test_when_storing_the_file_fails_no_row_points_at_it(api, settings):
    _, job, phone = half_an_hour_on_site(api)
    api.client.app.state.photo_store = BrokenStore(settings.resolved_photo_dir)
    r = upload(api, job["id"], good_photo(api), phone)
    assert_problem(r, 503, "photo-storage-failed")
    assert photo_rows(api) == 0
    assert "photo_uploaded" not in event_types(api, job)


def test_when_the_database_write_fails_the_orphan_file_is_swept(api, settings, monkeypatch):
    _, job, phone = half_an_hour_on_site(api)

    def failing_record(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(photo_service, "record", failing_record)
    assert upload(api, job["id"], good_photo(api), phone).status_code == 500
    monkeypatch.undo()
    kept = upload(api, job["id"], image_bytes(gps=CUSTOMER, gps_time=api.clock.now(), colour=(9, 9, 9)), phone).json()
    assert len(stored_files(settings)) == 4 and photo_rows(api) == 1
    store = LocalPhotoStore(settings.resolved_photo_dir)
    with api.database.transaction(write=False) as session:
        # Within the grace period nothing is touched: an upload may be between its file and its row.
        assert photo_service.sweep(session=session, store=store, now=api.clock.now(), grace=timedelta(hours=1)) == []
        later = datetime.now(UTC) + timedelta(hours=2)  # file times are the real clock's
        removed = photo_service.sweep(session=session, store=store, now=later, grace=timedelta(hours=1))
    assert len(removed) == 2 and all(kept["sha256"] not in key for key in removed)
    assert stored_files(settings) == [
        f"photos/{kept['sha256'][:2]}/{kept['sha256']}.jpg",
        f"thumbs/{kept['sha256'][:2]}/{kept['sha256']}.jpg",
    ]
    assert api.get(kept["url"]).status_code == 200


def test_the_sweep_command_removes_orphans_and_keeps_photos(api, settings, monkeypatch):
    from typer.testing import CliRunner

    from dispatch.cli import app as cli

    _, job, phone = half_an_hour_on_site(api)
    kept = upload(api, job["id"], good_photo(api), phone).json()
    orphan = LocalPhotoStore(settings.resolved_photo_dir)
    orphan.put(f"photos/ab/{'ab' * 32}.jpg", b"left behind")
    monkeypatch.setenv("DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("DISPATCH_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(cli, ["sweep-photos", "--older-than-minutes", "0", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would remove 1 file" in result.output and len(stored_files(settings)) == 3
    result = CliRunner().invoke(cli, ["sweep-photos", "--older-than-minutes", "0"])
    assert "removed 1 file" in result.output
    assert stored_files(settings) == [
        f"photos/{kept['sha256'][:2]}/{kept['sha256']}.jpg",
        f"thumbs/{kept['sha256'][:2]}/{kept['sha256']}.jpg",
    ]


# The rule on its own ---------------------------------------------------------------------------


def _judge(**overrides):
    from dispatch.photos.verdict import judge

    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    args = {
        "taken_at": start,
        "taken_lat": CUSTOMER[0],
        "taken_lon": CUSTOMER[1],
        "customer": CUSTOMER,
        "window": (start, start + timedelta(hours=1)),
        "max_distance_m": 250,
        "slack": timedelta(minutes=30),
    }
    return judge(**{**args, **overrides})


def test_the_verdict_needs_both_place_and_time_to_verify_and_either_to_refute():
    assert _judge().verdict == "verified"
    assert _judge(taken_lat=None, taken_lon=None).verdict == "no_metadata"  # right time, no place
    assert _judge(taken_at=None).verdict == "no_metadata"  # right place, no time
    assert _judge(customer=None).verdict == "no_metadata"  # a job nobody placed on the map
    late = _judge(taken_lat=None, taken_lon=None, taken_at=datetime(2026, 3, 10, 13, 0, tzinfo=UTC))
    assert late.verdict == "mismatch" and late.time_difference_seconds == 3 * 3600
    assert "after the visit ended" in late.reasons[-1]
    assert _judge(taken_at=None, taken_lat=KRAKOW[0], taken_lon=KRAKOW[1]).verdict == "mismatch"
    assert _judge(taken_lat=CUSTOMER[0] + 0.002).verdict == "verified"  # about 220 m
    assert _judge(taken_lat=CUSTOMER[0] + 0.003).verdict == "mismatch"  # about 330 m


def test_odd_exif_counts_as_absent_not_as_an_error():
    from PIL import ExifTags

    from dispatch.photos import images

    picture = Image.new("RGB", (8, 8))
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "Q"
    gps[ExifTags.GPS.GPSLatitude] = (95.0, 0.0, 0.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (21.0, 0.0, 0.0)
    gps[ExifTags.GPS.GPSDateStamp] = "yesterday"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2026:13:45 99:00:00"
    out = io.BytesIO()
    picture.save(out, format="JPEG", exif=exif)
    assert images.process(out.getvalue(), max_pixels=1000, thumbnail_px=4).metadata == images.Metadata()


@pytest.mark.parametrize("offset", ["+01:00", None])
def test_a_camera_clock_at_year_one_is_no_metadata_not_an_error(api, offset):
    from PIL import ExifTags

    # A Warsaw technician: a time without an offset is read in Warsaw, just past the calendar's start.
    _, job, phone = half_an_hour_on_site(api, shift={"start": "00:00", "end": "00:00", "timezone": "Europe/Warsaw"})
    picture = Image.new("RGB", (16, 16), (9, 9, 9))
    exif = Image.Exif()
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.DateTimeOriginal] = "0001:01:01 00:00:00"
    if offset:
        details[ExifTags.Base.OffsetTimeOriginal] = offset
    out = io.BytesIO()
    picture.save(out, format="JPEG", exif=exif)
    r = upload(api, job["id"], out.getvalue(), phone)
    assert r.status_code == 201, r.text
    assert r.json()["verdict"] == "no_metadata"
