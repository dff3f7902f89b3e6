"""Run a command (the test suite) with DISPATCH_TEST_DATABASE_URL pointing at a PostgreSQL.

    python scripts/with_postgres.py URL -- COMMAND...

1. If URL answers, the command runs against it.
2. Otherwise, if PostgreSQL's server programs are installed (``initdb``, ``pg_ctl``), a
   throwaway server is made in a temporary directory (trust auth, a free port on 127.0.0.1,
   its unix socket in the same directory), the command runs against it, and the server is
   stopped and its directory removed afterwards, whatever happened. As root, the server runs as
   the ``postgres`` user (initdb refuses root).
3. Otherwise it says loudly how to get the PostgreSQL half and exits 0, so `make test` on a
   laptop without PostgreSQL still runs the SQLite half to the end; with ``CI`` set it exits 1
   (CI must run both halves).

Standard library and psycopg only (the test extra installs psycopg).
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import psycopg

CONNECT_TIMEOUT_SECONDS = 3
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30


def say(message: str) -> None:
    print(f"with_postgres: {message}", file=sys.stderr, flush=True)


def answers(url: str) -> bool:
    """True if a PostgreSQL server accepts this URL (the SQLAlchemy driver suffix allowed)."""
    libpq_url = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
    try:
        with psycopg.connect(libpq_url, connect_timeout=CONNECT_TIMEOUT_SECONDS):
            return True
    except psycopg.Error:
        return False


def find_bindir() -> Path | None:
    """A directory holding initdb, pg_ctl and postgres together (pg_ctl starts the postgres
    next to it): pg_config's, then Debian's /usr/lib/postgresql/<version>/bin (newest first),
    then wherever initdb is on PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all((bindir / program).is_file() for program in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Throwaway:
    """A PostgreSQL cluster of our own in a temporary directory."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="dispatch-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root and there is no `postgres` user for initdb to run as") from exc
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float) -> None:
        # cwd inside our own directory: the postgres user may not be able to enter the checkout.
        subprocess.run([*self.as_user, *args], cwd=self.root, check=True, timeout=timeout, stdout=subprocess.DEVNULL)

    def start(self) -> str:
        say(f"initdb in {self.data} ({self.bindir})")
        self._run(
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-sync",
            timeout=START_TIMEOUT_SECONDS,
        )
        for attempt in range(3):
            self.port = free_port()
            # fsync off: the cluster is deleted afterwards, durability buys nothing here.
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "--pgdata",
                    str(self.data),
                    "--log",
                    str(self.log),
                    "--options",
                    options,
                    "--wait",
                    "--timeout",
                    str(START_TIMEOUT_SECONDS),
                    "start",
                    timeout=START_TIMEOUT_SECONDS + 10,
                )
                break
            except subprocess.CalledProcessError:
                # Another process may have taken the port between our probe and the bind.
                if attempt == 2 or "already in use" not in self._log_tail():
                    say(f"the throwaway server did not start:\n{self._log_tail()}")
                    raise
        say(f"throwaway PostgreSQL on 127.0.0.1:{self.port}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "<no server log>"

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "--pgdata",
                    str(self.data),
                    "--mode",
                    "immediate",
                    "--wait",
                    "stop",
                    timeout=STOP_TIMEOUT_SECONDS,
                )
            except (subprocess.SubprocessError, OSError) as exc:
                say(f"could not stop the throwaway server: {exc}")
        shutil.rmtree(self.root, ignore_errors=True)
        say(f"removed {self.root}")


@contextmanager
def terminating_cleanly() -> Iterator[None]:
    """SIGTERM (a CI timeout, a killed make) unwinds like Ctrl-C, so cleanup still runs."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(command: list[str], url: str) -> int:
    return subprocess.call(command, env={**os.environ, "DISPATCH_TEST_DATABASE_URL": url})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the PostgreSQL to use if it answers")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    if answers(args.url):
        return run(command, args.url)

    bindir = find_bindir()
    if bindir is None:
        say(
            "\n" + "!" * 78 + "\n"
            f"  No PostgreSQL answers at {args.url} and no PostgreSQL server is installed:\n"
            "  the PostgreSQL half of the suite did NOT run.\n"
            "  To run it: install the server (Debian/Ubuntu: apt-get install postgresql; it is\n"
            "  started here on a free port, in a temporary directory, and removed afterwards),\n"
            "  or point POSTGRES_URL at one: POSTGRES_URL=postgresql+psycopg://user@host:port/db make test-postgres\n"
            + "!"
            * 78
        )
        if os.environ.get("CI"):
            say("CI is set: failing, CI must run both halves")
            return 1
        return 0

    say(f"no PostgreSQL answers at {args.url}: starting a throwaway one")
    with terminating_cleanly():
        server = Throwaway(bindir)
        try:
            url = server.start()
            return run(command, url)
        finally:
            server.remove()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:
        say(f"interrupted ({exc or 'Ctrl-C'}); cleaned up")
        sys.exit(130)
