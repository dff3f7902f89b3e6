"""Intake: POST /v1/jobs with auto-dispatch under concurrent clients, beside a bare endpoint.

Each server is a real ``python -m uvicorn`` subprocess on 127.0.0.1 (one worker, the same
command line for the app and for ``bench/bare_app.py``). The load is a small asyncio
HTTP/1.1 client over raw keep-alive sockets, one connection per client, each sending its
next request as soon as the previous answer is read (closed loop). A raw client is used
rather than httpx so the load generator's own CPU (it shares the 2 cores with the server)
stays small and the bare figure is not capped by the client.

Only requests that start inside the measured window count; the first seconds are warm-up.
An answer other than 201 is an error; a request with no answer within the timeout is a
time-out (and its connection is replaced).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datagen
import httpx
from stats import CpuMeter, percentile

BENCH_DIR = Path(__file__).resolve().parent
ADMIN_KEY = "bench-admin-key-0123456789abcdef"  # 32 characters, only ever on 127.0.0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu_seconds(self) -> float:
        """user + system CPU of the server process, from /proc (Linux)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_server(target: list[str], *, env: dict[str, str], log: Path, health: str = "/healthz") -> Server:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        *target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_") and k != "DATABASE_URL"}
    full_env.update(env)
    handle = log.open("wb")
    proc = subprocess.Popen(cmd, env=full_env, stdout=handle, stderr=subprocess.STDOUT, cwd=BENCH_DIR.parent)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{health}", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not become healthy; see {log}")


# --------------------------------------------------------------------------- the load


def job_bodies(count: int, seed: int) -> list[bytes]:
    rng = random.Random(f"{seed}:intake")
    out = []
    for i in range(count):
        city = rng.choices(datagen.CITIES, weights=[c[3] for c in datagen.CITIES])[0]
        lat, lon = datagen._near(rng, city[1], city[2], 15.0)
        body = {
            "customer": {
                "name": f"Customer {i}",
                "phone": "+48 22 555 01 00",
                "address": f"{i} Main Street, {city[0]}",
                "lat": round(lat, 6),
                "lon": round(lon, 6),
            },
            "product": {"category": rng.choice(datagen.SKILLS), "model": "WM-100", "serial": f"SN{i}"},
            "fault": "Drum does not spin",
        }
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


@dataclass
class LoadResult:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    timeouts: int = 0
    assigned: int = 0
    server_cpu_s: float = float("nan")
    client_cpu_s: float = float("nan")
    machine_busy_cores: float = float("nan")
    error_samples: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        ok = len(self.latencies) - self.errors
        ms = [x * 1000 for x in self.latencies]
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "requests": len(self.latencies),
            "rps": len(self.latencies) / self.seconds if self.seconds else float("nan"),
            "p50_ms": percentile(ms, 50),
            "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else float("nan"),
            "errors": self.errors,
            "timeouts": self.timeouts,
            "statuses": dict(self.statuses),
            "assigned_share": self.assigned / ok if ok > 0 else float("nan"),
            "server_cpu_share": self.server_cpu_s / self.seconds if self.seconds else float("nan"),
            "client_cpu_share": self.client_cpu_s / self.seconds if self.seconds else float("nan"),
            "machine_busy_cores": self.machine_busy_cores,
            "error_samples": self.error_samples[:5],
        }


async def _drive(
    port: int,
    path: str,
    headers: dict[str, str],
    bodies: list[bytes],
    *,
    clients: int,
    warmup: float,
    duration: float,
    timeout: float,
    expect: int,
    result: LoadResult,
    idempotency_keys: bool = False,
) -> None:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    # Heads without their final blank line, so a fresh Idempotency-Key can be added per request.
    requests = [
        (
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(b)}\r\n{head}"
            ).encode(),
            b,
        )
        for b in bodies
    ]
    counter = iter(range(10**9))
    run_id = f"{os.getpid()}-{time.time_ns()}"
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from, measure_to = start + warmup, start + warmup + duration

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, bytes]:
        n = next(counter)
        request_head, request_body = requests[n % len(requests)]
        key = f"Idempotency-Key: {run_id}-{n}\r\n".encode() if idempotency_keys else b""
        writer.write(request_head + key + b"\r\n" + request_body)
        head_bytes = await reader.readuntil(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:].strip())
        body = await reader.readexactly(length) if length else b""
        return status, body

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                t0 = loop.time()
                if t0 >= measure_to:
                    return
                counted = t0 >= measure_from
                try:
                    status, body = await asyncio.wait_for(one(reader, writer), timeout)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                    if counted:
                        result.latencies.append(loop.time() - t0)
                        result.errors += 1
                        if isinstance(exc, asyncio.TimeoutError):
                            result.timeouts += 1
                        result.error_samples.append(repr(exc))
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                if counted:
                    result.latencies.append(loop.time() - t0)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    if status != expect:
                        result.errors += 1
                        result.error_samples.append(f"{status} {body[:300]!r}")
                    elif b'"status":"assigned"' in body:
                        result.assigned += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))


def run_load(
    server: Server,
    path: str,
    headers: dict[str, str],
    bodies: list[bytes],
    *,
    clients: int,
    warmup: float,
    duration: float,
    timeout: float = 10.0,
    expect: int = 201,
    idempotency_keys: bool = False,
) -> LoadResult:
    result = LoadResult(clients=clients, seconds=duration)
    cpu0, client0 = None, None
    meter = CpuMeter()

    async def main() -> None:
        nonlocal cpu0, client0
        loop = asyncio.get_running_loop()

        def mark() -> None:
            nonlocal cpu0, client0
            cpu0, client0 = server.cpu_seconds(), time.process_time()
            meter.start()

        loop.call_later(warmup, mark)
        await _drive(
            server.port,
            path,
            headers,
            bodies,
            clients=clients,
            warmup=warmup,
            duration=duration,
            timeout=timeout,
            expect=expect,
            result=result,
            idempotency_keys=idempotency_keys,
        )

    wall0 = time.perf_counter()
    asyncio.run(main())
    result.machine_busy_cores = meter.stop()
    wall = time.perf_counter() - wall0
    # CPU over the measured window (approximately: to the end of the last in-flight request).
    if cpu0 is not None:
        result.server_cpu_s = server.cpu_seconds() - cpu0
        result.client_cpu_s = time.process_time() - client0
        # the tail after measure_to (in-flight requests) is small; scale to the window
        result.server_cpu_s *= duration / max(wall - warmup, duration)
        result.client_cpu_s *= duration / max(wall - warmup, duration)
    return result


# --------------------------------------------------------------------------- the app


def app_env(url: str, data_dir: Path, synchronous: str | None = None) -> dict[str, str]:
    env = {
        "DATABASE_URL": url,
        "DISPATCH_AUTO_DISPATCH": "true",
        "DISPATCH_ADMIN_KEY": ADMIN_KEY,
        "DISPATCH_ENVIRONMENT": "production",
        "DISPATCH_DATA_DIR": str(data_dir),
        "DISPATCH_RATE_LIMIT_PER_SECOND": "0",  # one key drives the whole load
    }
    if synchronous:
        env["DISPATCH_SQLITE_SYNCHRONOUS"] = synchronous
    return env


def dispatcher_key(server: Server) -> str:
    r = httpx.post(
        f"http://127.0.0.1:{server.port}/v1/api-keys",
        json={"role": "dispatcher", "name": "bench"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["key"]
