"""Real uvicorn servers in subprocesses, for tests that need several app processes.

Only ever binds 127.0.0.1. Every server is waited for on ``/readyz`` with a bounded timeout
and always stopped (terminate, then kill) when the context ends, even if the test fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _spawn(*, port: int, env: Mapping[str, str], workers: int, log_path: Path) -> Server:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "dispatch.app:create_app",
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    log = log_path.open("wb")
    try:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()  # the child holds its own descriptor
    return Server(process=process, port=port, log_path=log_path)


def _wait_ready(server: Server, deadline: float) -> bool:
    """True once /readyz answers 200; False if the process died first."""
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                if client.get(server.base_url + "/readyz").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"server on port {server.port} not ready after {READY_TIMEOUT_SECONDS:g}s\n{server.log_tail()}")


def _port_was_taken(server: Server) -> bool:
    """Another process took the free port between our probe and uvicorn's bind."""
    return "address already in use" in server.log_tail().lower()


def stop(server: Server) -> None:
    process = server.process
    if process.poll() is not None:
        return
    process.terminate()  # uvicorn shuts down gracefully (and stops its workers) on SIGTERM
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        # Our own process group (start_new_session): its workers go with it.
        try:
            os.killpg(process.pid, 9)
        except ProcessLookupError:
            pass
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


@contextmanager
def running(
    *,
    env: Mapping[str, str],
    log_dir: Path,
    count: int = 1,
    workers: int = 1,
    wait: bool = True,
    retries: int = 3,
) -> Iterator[list[Server]]:
    """Start ``count`` servers at once (each with ``workers`` processes) on free ports.

    With ``wait`` the servers are ready when the block starts; a server that dies before it is
    ready (say, its port was taken in between) is started again on another port, ``retries``
    times at most, then the test fails with its log.
    """
    with ExitStack() as stack:
        servers: list[Server] = []

        def start(index: int, attempt: int) -> Server:
            server = _spawn(
                port=free_port(),
                env=env,
                workers=workers,
                log_path=log_dir / f"server-{index}-attempt-{attempt}.log",
            )
            stack.callback(stop, server)
            return server

        servers = [start(i, 0) for i in range(count)]
        if wait:
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            for i in range(count):
                attempt = 0
                while not _wait_ready(servers[i], deadline):
                    attempt += 1
                    if attempt > retries or not _port_was_taken(servers[i]):
                        raise RuntimeError(
                            f"server {i} exited with {servers[i].process.returncode} before it was ready\n"
                            f"{servers[i].log_tail()}"
                        )
                    servers[i] = start(i, attempt)
        yield servers


def wait_all(servers: list[Server]) -> list[bool]:
    """For servers started with ``wait=False``: which of them became ready (False = it died)."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    return [_wait_ready(server, deadline) for server in servers]
