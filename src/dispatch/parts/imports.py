"""CSV imports of the catalogue and of stock levels, as warehouses keep them in spreadsheets.

Both imports run in two passes. The file is streamed once and every row is checked with the
API's own schemas (and, for stock, against the database: known location and SKU, not below
what is reserved); nothing is written unless every row passed. The rows are then written in
one transaction, all or nothing: if the database refuses a row midway, everything is rolled
back and that row is reported.

- catalogue, ``sku,name,categories,lead_time_hours``: a known SKU is updated, a new one created;
- stock, ``location,sku,on_hand``: each row is a stock count through
  :func:`dispatch.parts.service.set_stock` (ledger row, never below reserved, a rise fills
  backorders), recorded as ``import:<file name>``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeRemainingColumn
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.errors import DispatchError
from dispatch.parts import service, stock
from dispatch.parts.models import Location, Part, Stock
from dispatch.parts.schemas import LocationCode, PartCreate, Sku, StockSet

PART_COLUMNS = ("sku", "name", "categories", "lead_time_hours")
STOCK_COLUMNS = ("location", "sku", "on_hand")

# Rows looked up in the database, locked or written per statement: keeps every IN list far
# below the bind-parameter limits of both databases.
BATCH = 500
# Errors kept for the report; beyond this they are only counted.
MAX_ERRORS = 200

_CATEGORY_SEPARATOR = re.compile(r"[;|]")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

# progress(phase, done, total): "checking" counts bytes of the file (rows for a stream, whose
# size is unknown), "writing" counts rows.
ProgressFn = Callable[[str, int, "int | None"], None]
Source = str | os.PathLike[str] | TextIO


@dataclass(frozen=True)
class RowError:
    line: int | None  # the file's line the row starts on; None for the file as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        where = ", ".join(p for p in (f"line {self.line}" if self.line else None, self.column) if p)
        return f"{where}: {self.message}" if where else self.message


@dataclass
class ImportResult:
    what: str  # "parts" or "stock levels"
    source: str  # the file's name
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    written: bool = False
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0  # all errors, also those beyond MAX_ERRORS that are not kept

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def error(self, line: int | None, column: str | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowError(line, column, message))

    def summary(self) -> str:
        if not self.ok:
            return f"nothing was written: {self.error_count} error{'s' * (self.error_count != 1)} in {self.source}"
        return (
            f"{self.what}: {self.created} created, {self.updated} updated, {self.unchanged} unchanged "
            f"({self.rows} row{'s' * (self.rows != 1)} from {self.source})"
        )


# --- the catalogue -------------------------------------------------------------------------


@dataclass(frozen=True)
class _PartRow:
    line: int
    part: PartCreate
    categories: list[str]  # as the catalogue stores them: normalised, unique, sorted


def import_parts(
    database: Database, source: Source, *, now: datetime, progress: ProgressFn | None = None
) -> ImportResult:
    """Create or update catalogue entries from ``sku,name,categories,lead_time_hours``."""
    with _opened(source) as (stream, name, position, size):
        result = ImportResult("parts", name)
        rows: list[_PartRow] = []
        first_line: dict[str, int] = {}
        for line, cells in _records(stream, PART_COLUMNS, result, _ticker(progress, position, size)):
            part = _check_part(line, cells, result)
            if part is None:
                continue
            if part.sku in first_line:
                result.error(line, "sku", f"{part.sku} is already on line {first_line[part.sku]}")
                continue
            first_line[part.sku] = line
            if result.ok:
                rows.append(_PartRow(line, part, sorted(set(part.categories))))
    if result.ok:
        _write(
            database,
            result,
            rows,
            progress,
            lambda session, batch: _write_parts(session, batch, result, now),
            lock=lambda session: _lock_known_parts(session, [r.part.sku for r in rows]),
        )
    return _finished(result)


def _check_part(line: int, cells: dict[str, str], result: ImportResult) -> PartCreate | None:
    lead_time, is_number = _number(cells["lead_time_hours"])
    categories = [c for c in _CATEGORY_SEPARATOR.split(cells["categories"]) if c.strip()]
    try:
        return PartCreate.model_validate(
            {"sku": cells["sku"], "name": cells["name"], "categories": categories, "lead_time_hours": lead_time}
        )
    except ValidationError as exc:
        _report(exc, line, result, numbers={"lead_time_hours": ("a number of hours", is_number)}, items=categories)
        return None


def _lock_known_parts(session: Session, skus: list[str]) -> None:
    """Lock the catalogue rows the file names that exist, up front and in id order: the order
    every stock change takes part locks in, so an import and a stock change cannot deadlock."""
    ids: list[int] = []
    for start in range(0, len(skus), BATCH):
        ids += session.scalars(select(Part.id).where(Part.sku.in_(skus[start : start + BATCH])))
    _lock_ids(session, ids)


def _write_parts(session: Session, batch: Sequence[_PartRow], result: ImportResult, now: datetime) -> None:
    known = {
        p.sku: p
        for p in session.scalars(
            select(Part).where(Part.sku.in_([r.part.sku for r in batch])).execution_options(populate_existing=True)
        )
    }
    for row in batch:
        with _blame(row.line):
            part = known.get(row.part.sku)
            if part is None:
                stock.create_part(session=session, part_in=row.part, now=now)
                result.created += 1
            elif (part.name, sorted(part.categories), part.lead_time_hours) == (
                row.part.name,
                row.categories,
                row.part.lead_time_hours,
            ):
                result.unchanged += 1
            else:
                part.name, part.categories = row.part.name, row.categories
                part.lead_time_hours = row.part.lead_time_hours
                part.updated_at = now
                session.flush()
                result.updated += 1


# --- stock levels --------------------------------------------------------------------------


class _StockRow(StockSet):
    """One row of a stock file: the count body plus the location and SKU the URL would carry."""

    location: LocationCode
    sku: Sku


@dataclass
class _StockLine:
    line: int
    location: str
    sku: str
    on_hand: int
    location_id: int = 0
    part_id: int = 0


@dataclass(frozen=True)
class _Importer(Caller):
    """The stock ledger's actor for an import: ``import:<file name>``."""

    file_name: str = ""

    @property
    def actor(self) -> str:
        return f"import:{self.file_name}"[:80]


def import_stock(
    database: Database, source: Source, *, settings: Settings, now: datetime, progress: ProgressFn | None = None
) -> ImportResult:
    """Set stock levels from ``location,sku,on_hand``, each row as a stock count."""
    with _opened(source) as (stream, name, position, size), database.transaction(write=False) as session:
        result = ImportResult("stock levels", name)
        locations = dict(session.execute(select(Location.code, Location.id)).all())
        rows: list[_StockLine] = []
        pending: list[_StockLine] = []  # checked alone, waiting to be looked up in the database
        first_line: dict[tuple[str, str], int] = {}
        for line, cells in _records(stream, STOCK_COLUMNS, result, _ticker(progress, position, size)):
            row = _check_stock(line, cells, result)
            if row is None:
                continue
            key = (row.location, row.sku)
            if key in first_line:
                result.error(line, "sku", f"{row.sku} at {row.location} is already on line {first_line[key]}")
                continue
            first_line[key] = line
            if row.location not in locations:
                result.error(line, "location", f"unknown location {row.location!r}")
                continue
            row.location_id = locations[row.location]
            pending.append(row)
            if len(pending) >= BATCH:
                _look_up(session, pending, rows, result)
                pending = []
        _look_up(session, pending, rows, result)
    result.errors.sort(key=lambda e: e.line or 0)  # database checks report a batch at a time
    if result.ok:
        caller = _Importer(key_id=0, role=Role.warehouse, file_name=name)

        def write(session: Session, batch: Sequence[_StockLine]) -> None:
            _write_stock(session, batch, result, caller=caller, now=now, settings=settings)

        # Every part the file counts is locked up front in id order, so the lock order of
        # parts.service (parts, then jobs) holds although set_stock may lock jobs to fill backorders.
        _write(
            database, result, rows, progress, write, lock=lambda session: _lock_ids(session, [r.part_id for r in rows])
        )
    return _finished(result)


def _check_stock(line: int, cells: dict[str, str], result: ImportResult) -> _StockLine | None:
    on_hand, is_number = _number(cells["on_hand"])
    try:
        row = _StockRow.model_validate({"location": cells["location"], "sku": cells["sku"], "on_hand": on_hand})
    except ValidationError as exc:
        _report(exc, line, result, numbers={"on_hand": ("a whole number", is_number)})
        return None
    return _StockLine(line, row.location, row.sku, row.on_hand)


def _look_up(session: Session, pending: list[_StockLine], rows: list[_StockLine], result: ImportResult) -> None:
    """Resolve a batch of rows' SKUs and refuse counts below what is reserved (the write checks again)."""
    if not pending:
        return
    parts = dict(session.execute(select(Part.sku, Part.id).where(Part.sku.in_({r.sku for r in pending}))).all())
    reserved = {
        (location_id, part_id): held
        for location_id, part_id, held in session.execute(
            select(Stock.location_id, Stock.part_id, Stock.reserved).where(Stock.part_id.in_(set(parts.values())))
        )
    }
    for row in pending:
        if row.sku not in parts:
            result.error(row.line, "sku", f"unknown SKU {row.sku!r}")
            continue
        row.part_id = parts[row.sku]
        held = reserved.get((row.location_id, row.part_id), 0)
        if row.on_hand < held:
            result.error(
                row.line,
                "on_hand",
                f"{held} of {row.sku} at {row.location} are reserved for jobs; on hand cannot go below that",
            )
        elif result.ok:
            rows.append(row)


def _lock_ids(session: Session, part_ids: list[int]) -> None:
    ids = sorted(set(part_ids))
    for start in range(0, len(ids), BATCH):
        stock.lock_parts(session, ids[start : start + BATCH])


def _write_stock(
    session: Session,
    batch: Sequence[_StockLine],
    result: ImportResult,
    *,
    caller: Caller,
    now: datetime,
    settings: Settings,
) -> None:
    for row in batch:
        with _blame(row.line):
            level = stock.level(session, row.location_id, row.part_id)
            before = None if level is None else level.on_hand  # the object is refreshed by set_stock
            service.set_stock(
                session=session,
                code=row.location,
                sku=row.sku,
                on_hand=row.on_hand,
                note=f"CSV import, line {row.line}",
                caller=caller,
                now=now,
                settings=settings,
            )
            session.flush()
        if before is None:
            result.created += 1
        elif before == row.on_hand:
            result.unchanged += 1
        else:
            result.updated += 1


# --- writing: one transaction, all or nothing ------------------------------------------------


class _Refused(Exception):
    def __init__(self, line: int, column: str | None, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


@contextmanager
def _blame(line: int) -> Iterator[None]:
    """Name the row when the service or the database refuses it."""
    try:
        yield
    except DispatchError as exc:
        raise _Refused(line, "on_hand" if exc.code == "below-reserved" else None, exc.detail) from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise _Refused(line, None, f"the database refused this row: {reason}") from exc


def _write(
    database: Database,
    result: ImportResult,
    rows: Sequence[Any],
    progress: ProgressFn | None,
    write: Callable[[Session, Sequence[Any]], None],
    lock: Callable[[Session], None] | None = None,
) -> None:
    try:
        with database.transaction() as session:
            if lock is not None:
                lock(session)
            for start in range(0, len(rows), BATCH):
                write(session, rows[start : start + BATCH])
                if progress is not None:
                    progress("writing", min(start + BATCH, len(rows)), len(rows))
    except _Refused as exc:
        result.error(exc.line, exc.column, exc.message)
    except SQLAlchemyError as exc:  # the commit itself
        result.error(None, None, f"the database refused the import: {getattr(exc, 'orig', None) or exc}")
    else:
        result.written = True


def _finished(result: ImportResult) -> ImportResult:
    if not result.written:
        result.created = result.updated = result.unchanged = 0
    return result


# --- reading CSV -------------------------------------------------------------------------------


@contextmanager
def _opened(source: Source) -> Iterator[tuple[TextIO, str, Callable[[], int] | None, int | None]]:
    """The text to read, the file's name, and how far into it the reader is (bytes) of how many."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        with path.open("rb") as raw:
            # utf-8-sig drops the byte order mark spreadsheets put in front of "CSV UTF-8".
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            try:
                yield text, path.name, raw.tell, os.fstat(raw.fileno()).st_size
            finally:
                text.detach()
    else:
        yield source, Path(str(getattr(source, "name", "") or "stream")).name, None, None


def _ticker(progress: ProgressFn | None, position: Callable[[], int] | None, size: int | None) -> Callable[[int], None]:
    def tick(rows: int) -> None:
        if progress is not None:
            progress("checking", position() if position is not None else rows, size)

    return tick


def _records(
    stream: TextIO, columns: tuple[str, ...], result: ImportResult, tick: Callable[[int], None]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Data rows as (line, {column: text}); blank rows are skipped, a bad header ends the file."""
    reader = csv.reader(stream)
    header: list[str] | None = None
    last = 0  # the last line read: a quoted value may span lines, so a row starts after it
    try:
        for cells in reader:
            line, last = last + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = _header(line, cells, columns, result)
                if header is None:
                    return
                continue
            if len(cells) > len(header) and not any(c.strip() for c in cells[len(header) :]):
                cells = cells[: len(header)]  # trailing separators of empty spreadsheet columns
            result.rows += 1
            if result.rows % 256 == 0:
                tick(result.rows)
            if len(cells) != len(header):
                result.error(line, None, f"has {len(cells)} values; the header has {len(header)} columns")
                continue
            yield line, dict(zip(header, cells, strict=True))
    except UnicodeDecodeError:
        result.error(last + 1, None, "is not UTF-8 text: save the file as CSV in UTF-8")
        return
    except csv.Error as exc:
        result.error(last + 1, None, f"cannot be read as CSV: {exc}")
        return
    tick(result.rows)
    if header is None:
        result.error(None, None, f"the file is empty: expected a header row {','.join(columns)}")


def _header(line: int, cells: list[str], columns: tuple[str, ...], result: ImportResult) -> list[str] | None:
    names = [c.strip().lstrip("\ufeff").strip().lower() for c in cells]
    while names and not names[-1]:
        names.pop()
    expected = f"the header must be {','.join(columns)} (in any order)"
    problems = []
    if missing := [c for c in columns if c not in names]:
        problems.append(f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)}")
    if extra := [n or "(blank)" for n in names if n not in columns]:
        problems.append(f"unknown column{'s' * (len(extra) > 1)} {', '.join(extra)}")
    if twice := sorted({n for n in names if n in columns and names.count(n) > 1}):
        problems.append(f"column{'s' * (len(twice) > 1)} {', '.join(twice)} more than once")
    if problems:
        result.error(line, None, f"{'; '.join(problems)}: {expected}")
        return None
    return names


def _number(text: str) -> tuple[Any, bool]:
    """A spreadsheet's number for the schema to judge; the text itself (and False) if it is none."""
    value = text.strip()
    if _INTEGER.fullmatch(value):
        return int(value), True
    if _DECIMAL.fullmatch(value):
        return float(value), True
    return text, False


def _report(
    exc: ValidationError,
    line: int,
    result: ImportResult,
    *,
    numbers: dict[str, tuple[str, bool]],
    items: list[str] | None = None,
) -> None:
    """One message per column, in words a spreadsheet user reads (not "a JSON number")."""
    seen: set[str | None] = set()
    for err in exc.errors():
        loc = err.get("loc", ())
        column = str(loc[0]) if loc else None
        if column in seen:
            continue
        seen.add(column)
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        if column in numbers:
            what, is_number = numbers[column]
            bound = (err.get("ctx") or {}).get("le")
            if isinstance(bound, float) and bound.is_integer():
                bound = int(bound)
            message = (
                f"must be {what} ≤ {bound}"
                if is_number and err.get("type") == "less_than_equal"
                else f"must be {what} ≥ 0"
            )
        elif items is not None and len(loc) > 1 and isinstance(loc[1], int) and loc[1] < len(items):
            message = f"{message} ({items[loc[1]].strip()!r})"
        result.error(line, column, message)


# --- for the command line --------------------------------------------------------------------


@contextmanager
def progress_bar(console: Console | None = None) -> Iterator[ProgressFn | None]:
    """A rich progress bar on the terminal (stderr); nothing at all when that is not a terminal."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def print_report(result: ImportResult, console: Console | None = None, errors: Console | None = None) -> None:
    """Errors (to stderr) and the one-line summary. User text is never read as rich markup."""
    console = console or Console()
    errors = errors or Console(stderr=True)
    for error in result.errors:
        errors.print(f"{result.source}: {error}", markup=False, highlight=False, soft_wrap=True)
    if result.error_count > len(result.errors):
        errors.print(f"… and {result.error_count - len(result.errors)} more errors", highlight=False)
    (errors if not result.ok else console).print(result.summary(), markup=False, highlight=False, soft_wrap=True)
