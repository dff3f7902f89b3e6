"""Photos decoded in bounded memory (issue 13): pixels x bytes per pixel x copies held at once is
what an upload costs, not its file size. A JPEG is decoded reduced to about the served size; a
PNG or WebP that cannot be is refused before a pixel is decoded if it would not fit the budget;
uploads take turns to decode; a form with two files is refused."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image
from support.photos import half_an_hour_on_site as on_site
from support.photos import stored_files, upload

from dispatch.photos import images

MIB = 1024 * 1024


def encoded(mode: str, size: tuple[int, int], fmt: str, *, orientation: int | None = None, **options) -> bytes:
    """A flat image: small on disk, as large as its pixels once decoded."""
    image = Image.new(mode, size, {"RGBA": (10, 200, 30, 128), "RGB": (10, 200, 30), "L": 90}[mode])
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation  # EXIF Orientation
        options["exif"] = exif
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def test_a_small_png_that_decodes_to_hundreds_of_megabytes_is_refused_before_it_is_decoded(api, settings):
    """7000 x 7000 RGBA is under the 50 MP limit and a 200 KB file, but 196 MB decoded, and the
    copies made to serve it took 600 MB. A PNG cannot be decoded reduced: refused, with why."""
    _, job, phone = on_site(api)
    bomb = encoded("RGBA", (7000, 7000), "PNG")
    assert len(bomb) < 300_000
    r = upload(api, job["id"], bomb, phone, name="wall.png", content_type="image/png")
    assert r.status_code == 422 and r.json()["code"] == "too-many-pixels", r.text
    assert 9_000_000 < r.json()["max_pixels"] < 13_000_000  # what a PNG with alpha may have in 100 MB
    assert "100 MB" in r.json()["detail"]
    assert stored_files(settings) == []


def test_a_50_megapixel_jpeg_is_decoded_reduced_and_served_upright_at_the_served_size(api):
    _, job, phone = on_site(api)
    r = upload(api, job["id"], encoded("RGB", (8660, 5773), "JPEG"), phone)
    assert r.status_code == 201, r.text
    photo = r.json()
    assert (photo["width"], photo["height"]) == (8660, 5773)  # the upload's own size is recorded
    served = Image.open(io.BytesIO(api.get(photo["url"]).content))
    assert served.size == (4330, 2887)  # decoded at half size (DCT scaling): 12.5 MP, under 13 MP
    turned = upload(api, job["id"], encoded("RGB", (6000, 4000), "JPEG", orientation=6), phone).json()
    assert Image.open(io.BytesIO(api.get(turned["url"]).content)).size == (2000, 3000)  # upright


def test_a_jpeg_whose_first_scan_lacks_components_is_priced_with_its_coefficient_buffer():
    """Progressive and multi-scan JPEGs make libjpeg keep every coefficient at full size (2 bytes a
    sample) whatever the scale: a multi-scan 50 MP baseline JPEG must not pass as a cheap one."""
    data = bytearray(encoded("RGB", (8660, 5773), "JPEG", subsampling=0))
    image = Image.open(io.BytesIO(bytes(data)))
    cheap = images.plan(image, bytes(data), served_max_pixels=13_000_000, budget_bytes=100 * MIB)
    sos = data.index(b"\xff\xda")
    assert data[sos + 4] == 3
    data[sos + 4] = 1  # the first scan now carries one component of three: the others follow later
    image = Image.open(io.BytesIO(bytes(data)))
    with pytest.raises(images.TooManyPixels):
        images.plan(image, bytes(data), served_max_pixels=13_000_000, budget_bytes=100 * MIB)
    assert cheap.scale == 2 and cheap.peak_bytes < 100 * MIB


WORST_CASES = {
    # Each the largest of its kind the plan accepts, or over the pixel limit's edge (the JPEG).
    "jpeg-50mp-turned": ("RGB", (8660, 5773), "JPEG", {"orientation": 6, "quality": 95}),
    "jpeg-progressive-444": ("RGB", (3800, 3800), "JPEG", {"progressive": True, "subsampling": 0}),
    "png-rgba": ("RGBA", (3300, 3300), "PNG", {}),
    "webp-rgba": ("RGBA", (2200, 2200), "WEBP", {"lossless": True}),
}
MEASURE = """
import json, sys
from dispatch.photos import images

def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

data = open(sys.argv[1], "rb").read()
before = kib("VmRSS:")
processed = images.process(data, max_pixels=50_000_000, thumbnail_px=320)
print(json.dumps({"peak_kib": kib("VmHWM:") - before, "after_kib": kib("VmRSS:") - before}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc (Linux)")
def test_the_worst_photos_under_the_pixel_limit_decode_within_the_memory_budget(tmp_path):
    """Measured in a fresh process each (its peak resident memory, VmHWM, minus what it held
    before): before this change the turned 50 MP JPEG took 384 MB and the PNG 600 MB."""
    measured = {}
    for name, (mode, size, fmt, options) in WORST_CASES.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(encoded(mode, size, fmt, **options))
        run = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=120, check=False
        )
        assert run.returncode == 0, run.stderr
        measured[name] = json.loads(run.stdout)
    assert all(m["peak_kib"] <= 100 * 1024 for m in measured.values()), measured
    assert all(m["after_kib"] <= 16 * 1024 for m in measured.values()), measured  # handed back afterwards


def test_uploads_take_turns_to_decode(api, settings, monkeypatch):
    settings.photo_concurrent_decodes = 1
    _, job, phone = on_site(api)
    decoding, inside, most = threading.Lock(), [0], [0]
    second, release = threading.Event(), threading.Event()
    real = images.process

    def held(data, **kwargs):
        with decoding:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            if inside[0] > 1:
                second.set()
        release.wait(10)  # the first decode holds its turn until the test lets it go
        try:
            return real(data, **kwargs)
        finally:
            with decoding:
                inside[0] -= 1

    monkeypatch.setattr(images, "process", held)
    answers = []
    uploads = [
        threading.Thread(
            target=lambda c=c: answers.append(upload(api, job["id"], encoded("RGB", (64, 48 + c), "JPEG"), phone))
        )
        for c in range(3)
    ]
    for t in uploads:
        t.start()
    assert not second.wait(1.0)  # nobody decodes beside the first
    release.set()
    for t in uploads:
        t.join(30)
    assert sorted(r.status_code for r in answers) == [201, 201, 201] and most[0] == 1


def test_two_files_in_one_upload_are_refused(api, settings):
    _, job, phone = on_site(api)
    first, other = encoded("RGB", (64, 48), "JPEG"), encoded("RGB", (48, 64), "JPEG")
    r = api.client.post(
        f"/v1/jobs/{job['id']}/photos",
        files=[("file", ("a.jpg", first, "image/jpeg")), ("file", ("b.jpg", other, "image/jpeg"))],
        headers=phone,
    )
    assert r.status_code == 422 and r.json()["code"] == "one-file-only", r.text
    assert stored_files(settings) == []
