from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.deps import CursorQuery, NowDep, UnitOfWorkDep
from dispatch.errors import Unprocessable, problem_responses
from dispatch.metrics import service
from dispatch.metrics.schemas import Metrics

router = APIRouter(prefix="/v1/metrics", tags=["metrics"], responses=problem_responses(400, 401, 403, 413, 422))
MAX_DAYS = 400
MAX_LIMIT = 1000


@router.get(
    "",
    response_model=Metrics,
    dependencies=[Depends(allow(Role.dispatcher, Role.supervisor))],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_metrics(
    uow: UnitOfWorkDep,
    now: NowDep,
    since: Annotated[date | None, Query(description="First day (UTC), default 30 days ago")] = None,
    until: Annotated[date | None, Query(description="Day after the last (UTC), default tomorrow")] = None,
    group_by: service.GroupBy = "none",
    interval: service.Interval = "none",
    format: Literal["json", "csv"] = "json",
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_LIMIT,
            description=(
                "Rows per page (JSON only); without it every row. Grouped by technician a month is a row per "
                "technician: thousands"
            ),
        ),
    ] = None,
    cursor: CursorQuery = None,
) -> Metrics | Response:
    """KPIs for jobs reported in the period (definitions in docs/sla.md); `format=csv` for the
    monthly review. Rows are in period, then group order; with `limit` they come a page at a time
    (follow `next_cursor`)."""
    for name, day in (("since", since), ("until", until)):
        if day is not None and not 2000 <= day.year < 3000:
            raise Unprocessable(
                f"{name} must be between the years 2000 and 2999",
                code="invalid-period",
                errors=[{"loc": ["query", name], "msg": "out of range", "type": "value_error"}],
            )
    end = until or (now + timedelta(days=1)).date()
    start = since or end - timedelta(days=30)
    if start >= end or (end - start).days > MAX_DAYS:
        raise Unprocessable(
            f"since must be before until, at most {MAX_DAYS} days apart",
            code="invalid-period",
            errors=[{"loc": ["query", "since"], "msg": "invalid period", "type": "value_error"}],
        )
    if format == "csv" and (limit is not None or cursor is not None):
        raise Unprocessable(
            "the CSV is never paged: leave out limit and cursor",
            code="invalid-paging",
            errors=[{"loc": ["query", "limit"], "msg": "not with format=csv", "type": "value_error"}],
        )
    after = _decode(cursor)
    rows = await uow.run(
        lambda session: service.compute(
            session=session,
            since=datetime.combine(start, time(), UTC),
            until=datetime.combine(end, time(), UTC),
            now=now,
            group_by=group_by,
            interval=interval,
            limit=None if limit is None else limit + 1,
            after=after,
        )
    )
    next_cursor = None
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode(service.key_of(rows[-1]))
    if format == "csv":
        flat = service.csv_rows(rows)
        out = io.StringIO()
        fields = list(flat[0]) if flat else list(service.CSV_COLUMNS)
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in flat)
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="metrics-{start}-{end}.csv"'},
        )
    # The rows are plain dicts in the model's field order (service.public); written as they are.
    # Building the `Metrics` model first took 0.4-1.2 s for 5,000 rows (much of it the garbage
    # collector walking the objects it makes) and serialised to the same bytes (docs/benchmarks.md,
    # Metrics); tests/test_metrics.py checks the body against the model.
    body = {
        "since": start.isoformat(),
        "until": end.isoformat(),
        "group_by": group_by,
        "interval": interval,
        "rows": rows,
        "next_cursor": next_cursor,
    }
    return Response(render(body), media_type="application/json")


def render(body: dict[str, Any]) -> bytes:
    """The JSON of a ``Metrics`` body given as dicts: the bytes ``Metrics.model_dump_json`` gives."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _encode(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(["metrics", *key]).encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[str, str] | None:
    """The (period, group) key after which the page starts; a cursor this API never gave out is a 422."""
    if cursor is None:
        return None
    try:
        kind, period, group = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if kind != "metrics" or not isinstance(period, str) or not isinstance(group, str):
            raise ValueError("not a cursor of ours")
        return period, group
    except (ValueError, TypeError, UnicodeDecodeError) as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise Unprocessable(
            "cursor is not one this API gave out",
            code="invalid-cursor",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from exc


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (a category an outlet typed as
    ``=HYPERLINK(...)``) is written with a leading apostrophe, as OWASP advises for CSV exports."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
