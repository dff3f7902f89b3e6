"""Idempotency fingerprints: what reading the body's meaning costs against hashing its bytes.

``fingerprints.of`` (multipart parsed by python-multipart, each part hashed as it streams
past; JSON parsed and written out with sorted keys) against ``fingerprints.raw`` (SHA-256 of
the bytes), on the bodies the API takes: a job intake JSON body, and photo uploads of 3 MB (a
12 MP phone JPEG) and 15 MB (DISPATCH_PHOTO_MAX_BYTES). Also the peak of memory allocated by
Python while fingerprinting (tracemalloc), to show the photo is not copied.

    .venv/bin/python bench/fingerprints.py
"""

from __future__ import annotations

import json
import os
import statistics
import time
import tracemalloc
from typing import Any

from dispatch.idempotency import fingerprints

JOB = {  # an outlet's intake body, as in docs/integration.md
    "external_ref": "58213",
    "customer": {
        "name": "Maria D\u0105browska",
        "phone": "+48 22 555 01 00",
        "address": "Marsza\u0142kowska 104, Warszawa",
        "lat": 52.2319,
        "lon": 21.0067,
    },
    "product": {"category": "washing machine", "model": "WM-100", "serial": "SN1"},
    "fault": "Drum does not spin",
}


def _multipart(content: bytes) -> tuple[str, bytes]:
    boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return f"multipart/form-data; boundary={boundary}", head + content + f"\r\n--{boundary}--\r\n".encode()


def _time(fns: list[Any], repeat: int) -> list[float]:
    """Median seconds of each, runs interleaved so a busy moment of the machine hits both."""
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times in zip(fns, runs, strict=True):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in runs]


def _peak(fn: Any) -> int:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    cases = [("job intake, JSON", "application/json", json.dumps(JOB).encode(), 2000)]
    for megabytes in (3, 15):
        content_type, body = _multipart(os.urandom(megabytes * 1024 * 1024))
        cases.append((f"photo upload, multipart, {megabytes} MB", content_type, body, 40))
    print("| body | size | raw (ms) | meaning (ms) | meaning / raw | peak extra memory, meaning |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, content_type, body, repeat in cases:
        args = ("POST", "/v1/jobs/1/photos", b"", content_type, body)
        raw, meaning = _time([lambda: fingerprints.raw(*args), lambda: fingerprints.of(*args)], repeat)
        peak = _peak(lambda: fingerprints.of(*args))
        size = f"{len(body) / 1e6:.1f} MB" if len(body) > 1e5 else f"{len(body)} B"
        print(
            f"| {name} | {size} | {raw * 1e3:.3f} | {meaning * 1e3:.3f} | {meaning / raw:.2f} | {peak / 1024:.0f} KiB |"
        )


if __name__ == "__main__":
    main()
