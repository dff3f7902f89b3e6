"""Photos: upload throughput and latency for phone-sized JPEGs, and the server's peak memory.

A real ``python -m uvicorn`` server (one worker, the app as ``dispatch serve`` runs it) on
SQLite and on PostgreSQL. Each of ``clients`` concurrent clients (4) is a technician standing at
their own job's customer (dispatched, ``on_site``) and uploads photos one after another on one
keep-alive connection (httpx), closed loop, for ``seconds`` after a warm-up.

The photos are 4032 × 3024 JPEGs (12 MP, a phone's default) of about 3 MB, with EXIF GPS at the
customer and the current time, so every upload is decoded in full, judged ``verified``, re-encoded
without EXIF and thumbnailed. Each upload is a different file (a counter in the EXIF description),
so nothing is answered from the content-addressed store: every request does the whole work.

Measured: requests per second and MB/s of uploads accepted (201), latency p50 / p95 / max (from
the client, request sent to response read), the server process's CPU seconds, and its resident
memory (RSS): before the run and the peak during it, sampled every 20 ms with psutil.

    .venv/bin/python bench/photos.py                      # both databases, 20 s each
    .venv/bin/python bench/photos.py --dbs sqlite --seconds 5

``--worst`` measures memory instead (issue 13): worst-case images under the pixel limit, 1 and 8
uploaded at once, each against a fresh server on SQLite (memory does not depend on the
database). For each: the server's RSS at rest, its peak while the uploads run (sampled every
20 ms), and its RSS a second after they are done. ``--before DIR`` measures the server from
another source tree first (``git archive <commit> src | tar -x -C /tmp/before``), side by side.

    .venv/bin/python bench/photos.py --worst
    .venv/bin/python bench/photos.py --worst --before /tmp/before/src
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import intake
import psutil
from PIL import ExifTags, Image, ImageFilter
from sqlalchemy import create_engine, make_url, text
from stats import CpuMeter, percentile

from dispatch.config import Settings
from dispatch.database import migrate

CUSTOMER = (52.2319, 21.0067)
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PLACEHOLDER = b"bench-photo-0000000000"


def phone_photo(target_bytes: int = 3_000_000, size: tuple[int, int] = (4032, 3024)) -> bytes:
    """A 12 MP JPEG of about ``target_bytes`` with EXIF GPS at the customer, and a fixed-length
    placeholder in the EXIF description that ``variant`` replaces (a new file, same pixels)."""
    width, height = size
    small = Image.effect_noise((width // 8, height // 8), 90).convert("RGB").filter(ImageFilter.GaussianBlur(1))
    base = small.resize(size, Image.Resampling.BICUBIC)
    now = datetime.now(UTC)
    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = PLACEHOLDER.decode()
    exif[ExifTags.Base.Make] = "BenchPhone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (52.0, 13.0, 54.84)
    gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = "E", (21.0, 0.0, 24.12)
    gps[ExifTags.GPS.GPSDateStamp] = now.strftime("%Y:%m:%d")
    gps[ExifTags.GPS.GPSTimeStamp] = (float(now.hour), float(now.minute), float(now.second))
    noise = Image.effect_noise(size, 40).convert("RGB")
    best = b""
    for alpha in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5):  # more fine grain, bigger file
        out = io.BytesIO()
        Image.blend(base, noise, alpha).save(out, format="JPEG", quality=90, exif=exif)
        best = out.getvalue()
        if len(best) >= target_bytes:
            break
    assert PLACEHOLDER in best
    return best


def variant(photo: bytes, n: int) -> bytes:
    return photo.replace(PLACEHOLDER, f"bench-photo-{n:010d}".encode(), 1)


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self.every)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return self.peak


def prepare(base: str, clients: int) -> list[tuple[int, str]]:
    """One technician per client, each on site at a job of their own; returns (job id, key)."""
    admin = {"Authorization": f"Bearer {intake.ADMIN_KEY}"}
    with httpx.Client(base_url=base, headers=admin, timeout=30) as http:
        out = []
        for i in range(clients):
            tech = (
                http.post(
                    "/v1/technicians",
                    json={
                        "name": f"Bench {i}",
                        "skills": ["washing machine"],
                        "lat": CUSTOMER[0],
                        "lon": CUSTOMER[1],
                        "capacity": 5,
                    },
                )
                .raise_for_status()
                .json()
            )
            job = (
                http.post(
                    "/v1/jobs",
                    json={
                        "customer": {
                            "name": f"Customer {i}",
                            "address": "Marszałkowska 104, Warszawa",
                            "lat": CUSTOMER[0],
                            "lon": CUSTOMER[1],
                        },
                        "product": {"category": "washing machine"},
                        "fault": "Drum does not spin",
                    },
                )
                .raise_for_status()
                .json()
            )
            http.post(
                f"/v1/jobs/{job['id']}/assign", json={"technician_id": tech["id"], "reason": "bench"}
            ).raise_for_status()
            key = (
                http.post("/v1/api-keys", json={"role": "technician", "technician_id": tech["id"]})
                .raise_for_status()
                .json()["key"]
            )
            http.post(
                f"/v1/jobs/{job['id']}/status",
                json={"status": "on_site", "at": datetime.now(UTC).isoformat()},
                headers={"Authorization": f"Bearer {key}"},
            ).raise_for_status()
            out.append((job["id"], key))
        return out


def drive(
    base: str, seats: list[tuple[int, str]], photo: bytes, *, seconds: float, warmup: float, counter_start: int
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    verdicts: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(counter_start, counter_start + 10_000_000))
    begin = time.monotonic()
    measure_from, stop_at = begin + warmup, begin + warmup + seconds

    def client(job_id: int, key: str) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
            while (started := time.monotonic()) < stop_at:
                with lock:
                    n = next(counter)
                body = variant(photo, n)
                r = http.post(f"/v1/jobs/{job_id}/photos", files={"file": (f"IMG_{n}.jpg", body, "image/jpeg")})
                took = time.monotonic() - started
                if started >= measure_from:
                    with lock:
                        latencies.append(took)
                        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                        if r.status_code == 201:
                            verdict = r.json()["verdict"]
                            verdicts[verdict] = verdicts.get(verdict, 0) + 1

    threads = [threading.Thread(target=client, args=seat) for seat in seats]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - measure_from
    ok = statuses.get(201, 0)
    return {
        "requests": len(latencies),
        "ok": ok,
        "statuses": statuses,
        "verdicts": verdicts,
        "wall_s": wall,
        "uploads_per_s": ok / wall,
        "mb_per_s": ok * len(photo) / wall / 1e6,
        "p50_ms": percentile([x * 1000 for x in latencies], 50),
        "p95_ms": percentile([x * 1000 for x in latencies], 95),
        "max_ms": max(latencies) * 1000 if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


def run_one(dialect: str, url: str, work: Path, photo: bytes, args: argparse.Namespace) -> dict[str, Any]:
    migrate.upgrade(Settings(database_url=url))
    data_dir = work / f"data-{dialect}"
    env = intake.app_env(url, data_dir)
    env["DISPATCH_AUTO_DISPATCH"] = "false"
    server = intake.start_server(["dispatch.app:create_app", "--factory"], env=env, log=work / f"photos-{dialect}.log")
    try:
        base = f"http://127.0.0.1:{server.port}"
        seats = prepare(base, args.clients)
        rss_before = psutil.Process(server.proc.pid).memory_info().rss
        sampler = RssSampler(server.proc.pid)
        sampler.start()
        cpu_before, meter = server.cpu_seconds(), CpuMeter()
        meter.start()
        result = drive(base, seats, photo, seconds=args.seconds, warmup=args.warmup, counter_start=0)
        busy = meter.stop()
        result["server_cpu_s"] = server.cpu_seconds() - cpu_before
        result["machine_busy_cores"] = busy
        result["rss_before_mb"] = rss_before / 2**20
        result["rss_peak_mb"] = sampler.stop() / 2**20
        stored = sum(p.stat().st_size for p in (data_dir / "photos").rglob("*") if p.is_file())
        result["stored_mb"] = stored / 1e6
    finally:
        server.stop()
    return {"dialect": dialect, "clients": args.clients, "photo_bytes": len(photo), **result}


def worst_images() -> dict[str, bytes]:
    """Small files that decode large: the review's 7000 x 7000 RGBA PNG (48 MP, under the 50 MP
    limit), a 50 MP JPEG to be turned upright, and the largest RGBA PNG the budget accepts."""

    def encoded(mode: str, size: tuple[int, int], fmt: str, **options: Any) -> bytes:
        out = io.BytesIO()
        Image.new(mode, size, (10, 200, 30, 128)[: len(mode)]).save(out, format=fmt, **options)
        return out.getvalue()

    turned = Image.Exif()
    turned[ExifTags.Base.Orientation] = 6
    return {
        "PNG RGBA 7000 x 7000": encoded("RGBA", (7000, 7000), "PNG"),
        "JPEG 8660 x 5773, turned": encoded("RGB", (8660, 5773), "JPEG", quality=95, exif=turned),
        "PNG RGBA 3300 x 3300": encoded("RGBA", (3300, 3300), "PNG"),
    }


def run_worst(work: Path, src: str | None) -> list[dict[str, Any]]:
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, photo in worst_images().items():
        for clients in (1, 8):
            url = f"sqlite:///{work / f'worst-{len(rows)}.sqlite3'}"
            migrate.upgrade(Settings(database_url=url))
            env = intake.app_env(url, work / f"data-worst-{len(rows)}")
            env["DISPATCH_AUTO_DISPATCH"] = "false"
            if src:
                env["PYTHONPATH"] = str(Path(src).resolve())
            server = intake.start_server(
                ["dispatch.app:create_app", "--factory"], env=env, log=work / f"worst-{len(rows)}.log"
            )
            try:
                base = f"http://127.0.0.1:{server.port}"
                seats = prepare(base, clients)
                process = psutil.Process(server.proc.pid)
                rest = process.memory_info().rss
                sampler = RssSampler(server.proc.pid)
                sampler.start()
                statuses: list[int] = []
                started = time.monotonic()

                def one(job_id: int, key: str, n: int) -> None:
                    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600) as http:
                        r = http.post(f"/v1/jobs/{job_id}/photos", files={"file": (f"w{n}.bin", photo, "image/png")})
                        statuses.append(r.status_code)

                threads = [threading.Thread(target=one, args=(*seat, n)) for n, seat in enumerate(seats)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.monotonic() - started
                time.sleep(1.0)  # let the server settle: what it keeps is what the next hour sees
                peak = sampler.stop()
                after = process.memory_info().rss
            finally:
                server.stop()
            rows.append(
                {
                    "image": name,
                    "file_bytes": len(photo),
                    "clients": clients,
                    "statuses": dict(sorted(Counter(statuses).items())),
                    "rss_rest_mb": rest / 2**20,
                    "rss_peak_mb": peak / 2**20,
                    "rss_after_mb": after / 2**20,
                    "wall_s": wall,
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def print_worst(rows: list[dict[str, Any]], before: list[dict[str, Any]] | None = None) -> None:
    """One line per image and number at once: the server's RSS at rest, its peak above that, and
    what it still holds afterwards; with the code before the change beside it if measured."""

    def cells(r: dict[str, Any]) -> str:
        answers = ", ".join(f"{n} × {code}" for code, n in r["statuses"].items())
        return (
            f"{answers} | {r['rss_peak_mb'] - r['rss_rest_mb']:,.0f} | {r['rss_peak_mb']:,.0f} | "
            f"{r['rss_after_mb']:,.0f}"
        )

    head = "answers | peak − rest MiB | peak MiB | after MiB"
    if before:
        print(f"| image | file | at once | before: {head} | now: {head} |")
        print("| --- | ---: | ---: |" + " --- | ---: | ---: | ---: |" * 2)
    else:
        print(f"| image | file | at once | {head} |")
        print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for n, r in enumerate(rows):
        first = f"| {r['image']} | {r['file_bytes'] / 1e3:,.0f} kB | {r['clients']} | "
        print(first + (f"{cells(before[n])} | " if before else "") + f"{cells(r)} |")
    rest = ", ".join(f"{r['rss_rest_mb']:.0f}" for r in (before or []) + rows)
    print(f"<!-- RSS at rest: {rest} MiB -->")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dbs", default="sqlite,postgresql")
    p.add_argument("--pg-url", default=DEFAULT_PG)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--photo-bytes", type=int, default=3_000_000)
    p.add_argument("--worst", action="store_true", help="peak memory for worst-case images, 1 and 8 at once")
    p.add_argument("--before", help="with --worst: measure the server from this source tree too (the code before)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dispatch-photos-bench-"))
    if args.worst:
        try:
            before = run_worst(work / "before", args.before) if args.before else None
            rows = run_worst(work / "now", None)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results = Path(__file__).resolve().parent / "results"
        results.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        (results / f"photos-worst-{stamp}.json").write_text(json.dumps({"before": before, "now": rows}, indent=2))
        print_worst(rows, before)
        return
    photo = phone_photo(args.photo_bytes)
    print(f"photo: {len(photo) / 1e6:.2f} MB, 4032 x 3024", file=sys.stderr)
    rows = []
    pg_name = None
    pg_base = make_url(args.pg_url).set(drivername="postgresql+psycopg")
    try:
        for dialect in [d.strip() for d in args.dbs.split(",") if d.strip()]:
            if dialect == "sqlite":
                url = f"sqlite:///{work / 'photos.sqlite3'}"
            else:
                pg_name = "dispatch_bench_photos"
                admin = create_engine(pg_base, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
                    conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
                admin.dispose()
                url = pg_base.set(database=pg_name).render_as_string(hide_password=False)
            rows.append(run_one(dialect, url, work, photo, args))
            print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        if pg_name:
            admin = create_engine(pg_base, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(work, ignore_errors=True)
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"photos-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json").write_text(json.dumps(rows, indent=2))
    print(
        "| database | clients | photo | uploads/s | MB/s | p50 ms | p95 ms | max ms | server CPU ms / upload "
        "| RSS before → peak MB | machine busy (cores) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['dialect']} | {r['clients']} | {r['photo_bytes'] / 1e6:.1f} MB | {r['uploads_per_s']:.2f} | "
            f"{r['mb_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} | "
            f"{r['server_cpu_s'] / max(r['ok'], 1) * 1000:.0f} | {r['rss_before_mb']:.0f} → {r['rss_peak_mb']:.0f} | "
            f"{r['machine_busy_cores']:.1f} |"
        )
        print(
            f"<!-- {r['dialect']}: {r['ok']} of {r['requests']} accepted, statuses {r['statuses']}, "
            f"verdicts {r['verdicts']}, stored {r['stored_mb']:.0f} MB -->"
        )


if __name__ == "__main__":
    main()
