"""A wheel that serves: built from this checkout and installed, with its dependencies, into a
fresh virtual environment (as an operator would, no checkout in sight), `dispatch serve`
migrates its own database from the scripts inside the package and answers.

Slow (a build and an install, about a minute): `-m "not slow"` leaves it out while iterating.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import servers

REPO = Path(__file__).resolve().parents[1]
ADMIN_KEY = "wheel-test-admin-key-0001"
BUILD_TIMEOUT_SECONDS = 300
INSTALL_TIMEOUT_SECONDS = 600
READY_TIMEOUT_SECONDS = 90
# What pip says when it cannot reach an index and has nothing cached to install from.
NO_INDEX_SIGNS = (
    "no matching distribution found",
    "could not find a version that satisfies",
    "failed to establish a new connection",
    "temporary failure in name resolution",
    "network is unreachable",
)

pytestmark = pytest.mark.slow


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that points back at the checkout or its settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DISPATCH_") and k not in {"DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    return {**env, **extra}


def _run(command: list[str], *, timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel of this checkout installed (not editable)."""
    if os.environ.get("DISPATCH_TEST_DATABASE_URL"):
        pytest.skip("the installed wheel serves its own SQLite database: the SQLite run covers it")
    work = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(work / "dist"), str(REPO)],
        timeout=BUILD_TIMEOUT_SECONDS,
        cwd=work,
    )
    _give_up_unless(built, "building the wheel")
    [wheel] = (work / "dist").glob("field_dispatch-*.whl")

    env_dir = work / "venv"
    _give_up_unless(_run([sys.executable, "-m", "venv", str(env_dir)], timeout=120, cwd=work), "making a venv")
    installed = _run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        timeout=INSTALL_TIMEOUT_SECONDS,
        cwd=work,
    )
    _give_up_unless(installed, "installing the wheel with its dependencies")
    return env_dir


def _give_up_unless(result: subprocess.CompletedProcess[str], doing: str) -> None:
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    # Without network or a pip cache there is nothing to install from: say so, except in CI,
    # where the check must run.
    if not os.environ.get("CI") and any(sign in output.lower() for sign in NO_INDEX_SIGNS):
        pytest.skip(f"{doing}: no package index reachable and nothing in pip's cache ({output.strip()[-300:]})")
    pytest.fail(f"{doing} failed ({result.returncode}):\n{output[-4000:]}")


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[str]:
    """`dispatch serve` from the fresh venv, in an empty directory with an empty data dir."""
    data_dir = tmp_path / "data"
    env = _clean_env(DISPATCH_DATA_DIR=str(data_dir), DISPATCH_ADMIN_KEY=ADMIN_KEY)
    for attempt in range(3):
        port = servers.free_port()
        log_path = tmp_path / f"serve-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(venv / "bin" / "dispatch"), "serve", "--host", servers.HOST, "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        server = servers.Server(process=process, port=port, log_path=log_path)
        try:
            if _ready(server):
                yield server.base_url
                return
            if "address already in use" not in server.log_tail().lower():
                pytest.fail(f"`dispatch serve` exited with {process.returncode}:\n{server.log_tail()}")
        finally:
            servers.stop(server)
    pytest.fail("no free port after 3 attempts")


def _ready(server: servers.Server) -> bool:
    """True once /readyz answers 200; False if the process died first."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                if client.get(server.base_url + "/readyz").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    pytest.fail(f"not ready after {READY_TIMEOUT_SECONDS}s:\n{server.log_tail()}")


def test_the_installed_package_is_the_wheel_not_the_checkout(venv, tmp_path):
    found = _run(
        [str(venv / "bin" / "python"), "-c", "import dispatch.database.migrate as m; print(m.MIGRATIONS_DIR)"],
        timeout=60,
        cwd=tmp_path,
    )
    assert found.returncode == 0, found.stderr
    migrations = Path(found.stdout.strip())
    assert migrations.is_relative_to(venv), migrations
    assert sorted(p.name for p in (migrations / "versions").glob("*.py")) == sorted(
        p.name for p in (REPO / "src" / "dispatch" / "migrations" / "versions").glob("*.py")
    )


def test_the_installed_wheel_migrates_its_database_and_serves(served, tmp_path):
    assert (tmp_path / "data" / "dispatch.sqlite3").exists()
    with httpx.Client(base_url=served, timeout=10.0) as client:
        assert client.get("/readyz").status_code == 200
        created = client.post(
            "/v1/technicians",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={"name": "Anna Nowak", "skills": ["washing machine"], "lat": 52.23, "lon": 21.01},
        )
        assert created.status_code == 201, created.text
        assert created.json()["name"] == "Anna Nowak"
