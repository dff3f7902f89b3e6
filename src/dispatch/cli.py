"""The `dispatch` command: serve, migrate, keys, demo data, the committed OpenAPI spec."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from dispatch.auth.models import Role
from dispatch.config import REPO_ROOT, Settings

if TYPE_CHECKING:
    from dispatch.database.core import Database

app = typer.Typer(help="Field repair dispatch and SLA service.", no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()

OPENAPI_PATH = REPO_ROOT / "openapi" / "openapi.json"


def _database(settings: Settings) -> Database:
    from dispatch.database.core import Database, make_engine

    return Database(make_engine(settings))


@app.command()
def migrate() -> None:
    """Bring the database (DATABASE_URL, default a SQLite file in ./data) to the latest schema."""
    from dispatch.database import migrate as migrations

    settings = Settings()
    migrations.upgrade(settings)
    console.print(f"[green]migrated[/] {_safe_url(settings.resolved_database_url)}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="Run migrations first")] = True,
    watcher: Annotated[
        bool,
        typer.Option("--watcher/--no-watcher", help="Watch SLAs in this process (off when `dispatch worker` runs)"),
    ] = True,
) -> None:
    """Serve the API (docs at /docs), with the SLA watcher inside unless told otherwise."""
    import os

    import uvicorn

    if migrate_first:
        migrate()
    _check_admin_key(Settings())
    os.environ["DISPATCH_SLA_WATCHER_IN_APP"] = "true" if watcher else "false"
    uvicorn.run(
        "dispatch.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


def _check_admin_key(settings: Settings) -> None:
    """A configured admin key that every request would refuse (revoked, expired) stops the start
    here, with the reason and what to do, before the server prints anything else."""
    if not settings.admin_key:
        return
    from dispatch.auth import service as auth
    from dispatch.clock import SystemClock
    from dispatch.errors import DispatchError

    database = _database(settings)
    try:
        with database.transaction(write=False) as session:
            auth.check_admin_key(session=session, secret=settings.admin_key, now=SystemClock().now())
    except DispatchError as exc:
        console.print(f"[red]error:[/] {exc.detail}")
        raise typer.Exit(2) from exc
    finally:
        database.dispose()


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="One SLA pass and send what is due now, then exit")] = False,
) -> None:
    """Background work outside the servers: the SLA watcher, and webhook delivery (with the
    purge of expired idempotency keys). Run one or more beside `dispatch serve --no-watcher`
    with DISPATCH_WEBHOOK_WORKER=false; several never record a checkpoint twice, and each
    webhook delivery is leased to one worker at a time."""
    import asyncio
    import logging
    import signal
    import threading

    from dispatch.clock import SystemClock
    from dispatch.sla import watcher as sla_watcher
    from dispatch.webhooks.worker import Worker

    settings = Settings()
    database = _database(settings)
    clock = SystemClock()
    delivery = Worker(database=database, settings=settings, clock=clock)
    try:
        if once:
            result = sla_watcher.run_pass(database, clock.now, settings)
            console.print(
                f"fired {result.fired}, predicted {result.predicted}, cleared {result.cleared} in {result.seconds:.2f}s"
            )
            console.print(f"{delivery.drain()} delivery attempt(s)")
            return
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        sender = threading.Thread(target=delivery.serve_forever, name="webhooks", daemon=True)
        sender.start()
        console.print(f"SLA watcher and webhook worker {delivery.worker_id} running; Ctrl-C to stop")

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await sla_watcher.watch(database, clock.now, settings, stop)

        asyncio.run(main())
        delivery.stopping.set()
        sender.join(timeout=settings.webhook_timeout_seconds + 5)
    finally:
        delivery.close()
        database.dispose()


@app.command("create-key")
def create_key(
    role: Annotated[Role, typer.Option(help="The key's role")],
    technician_id: Annotated[int | None, typer.Option(help="For a technician key")] = None,
    outlet_id: Annotated[int | None, typer.Option(help="For an outlet key")] = None,
    name: Annotated[str, typer.Option(help="A label to recognise the key by")] = "",
) -> None:
    """Create an API key and print it once."""
    from dispatch.auth import service as auth
    from dispatch.clock import SystemClock
    from dispatch.errors import DispatchError

    settings = Settings()
    database = _database(settings)
    try:
        with database.transaction() as session:
            key, secret = auth.issue(
                session=session,
                role=role,
                now=SystemClock().now(),
                name=name,
                technician_id=technician_id,
                outlet_id=outlet_id,
            )
    except DispatchError as exc:
        console.print(f"[red]error:[/] {exc.detail}")
        raise typer.Exit(2) from exc
    console.print(f"key {key.id} ({role.value}): [bold]{secret}[/]")
    console.print("Store it now: only its hash is kept.")


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API afterwards")] = True,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Migrate, load a demo (technicians over Warsaw, open jobs, a key per role) and serve it."""
    from dispatch import demo as demo_data

    os.environ.setdefault("DISPATCH_AUTO_DISPATCH", "true")
    migrate()
    settings = Settings()
    database = _database(settings)
    keys = demo_data.load(database=database, settings=settings)
    database.dispose()
    if keys is None:
        console.print("Demo data is already loaded; its keys were printed the first time.")
    else:
        # Plain lines, never truncated to the terminal's width: these are to be copied.
        console.print("[bold]Demo API keys (shown once):[/]")
        for role, bound, secret in keys:
            console.print(f"  {role:<11} {bound:<18} {secret}", soft_wrap=True, highlight=False)
        console.print(
            f"Try: curl -H 'Authorization: Bearer {keys[1][2]}' http://{host}:{port}/v1/jobs",
            soft_wrap=True,
            highlight=False,
        )
    if serve_after:
        console.print(f"API docs: http://{host}:{port}/docs")
        serve(host=host, port=port, workers=1, migrate_first=False)


@app.command("import-parts")
def import_parts(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV with columns sku,name,categories,lead_time_hours"
        ),
    ],
) -> None:
    """Import the parts catalogue from CSV: new SKUs are created, known ones updated. All or nothing."""
    from dispatch.clock import SystemClock
    from dispatch.parts import imports

    database = _database(Settings())
    try:
        with imports.progress_bar() as progress:
            result = imports.import_parts(database, file, now=SystemClock().now(), progress=progress)
    finally:
        database.dispose()
    imports.print_report(result, console)
    if not result.ok:
        raise typer.Exit(1)


@app.command("import-stock")
def import_stock(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV with columns location,sku,on_hand")
    ],
) -> None:
    """Set stock levels from CSV, each row as a stock count (ledger, reservations, backorders). All or nothing."""
    from dispatch.clock import SystemClock
    from dispatch.parts import imports

    settings = Settings()
    database = _database(settings)
    try:
        with imports.progress_bar() as progress:
            result = imports.import_stock(database, file, settings=settings, now=SystemClock().now(), progress=progress)
    finally:
        database.dispose()
    imports.print_report(result, console)
    if not result.ok:
        raise typer.Exit(1)


@app.command("sweep-photos")
def sweep_photos(
    older_than_minutes: Annotated[
        float,
        typer.Option(
            min=0, help="Leave files younger than this alone: an upload may be between storing its file and its row"
        ),
    ] = 60,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed")] = False,
) -> None:
    """Remove photo files no photo record points at (left by uploads whose database write failed)."""
    from datetime import timedelta

    from dispatch.clock import SystemClock
    from dispatch.photos import service as photos
    from dispatch.photos.storage import LocalPhotoStore

    settings = Settings()
    database = _database(settings)
    try:
        with database.transaction(write=False) as session:
            removed = photos.sweep(
                session=session,
                store=LocalPhotoStore(settings.resolved_photo_dir),
                now=SystemClock().now(),
                grace=timedelta(minutes=older_than_minutes),
                dry_run=dry_run,
            )
    finally:
        database.dispose()
    for key in removed:
        console.print(key)
    console.print(
        f"{'would remove' if dry_run else 'removed'} {len(removed)} file(s) from {settings.resolved_photo_dir}"
    )


@app.command()
def openapi(
    check: Annotated[bool, typer.Option(help="Fail if the committed spec differs from the app")] = False,
    out: Annotated[Path, typer.Option(help="Where the spec lives")] = OPENAPI_PATH,
) -> None:
    """Write (or check) the committed OpenAPI spec in openapi/."""
    text = render_openapi()
    if check:
        if not out.exists() or out.read_text() != text:
            console.print(f"[red]{out} is out of date[/]: run `dispatch openapi`")
            raise typer.Exit(1)
        console.print(f"{out} matches the app")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    console.print(f"wrote {out}")


def render_openapi() -> str:
    from dispatch.app import create_app

    spec = create_app(Settings(database_url="sqlite://")).openapi()
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    app()
