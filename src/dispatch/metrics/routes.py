from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.deps import NowDep, UnitOfWorkDep
from dispatch.errors import Unprocessable, problem_responses
from dispatch.metrics import service
from dispatch.metrics.schemas import Metrics

router = APIRouter(prefix="/v1/metrics", tags=["metrics"], responses=problem_responses(400, 401, 403, 413, 422))
MAX_DAYS = 400


@router.get(
    "", response_model=Metrics, dependencies=[Depends(allow(Role.dispatcher, Role.supervisor))],
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
) -> Metrics | Response:
    """KPIs for jobs reported in the period (definitions in docs/sla.md); `format=csv` for the
    monthly review."""
    end = until or (now + timedelta(days=1)).date()
    start = since or end - timedelta(days=30)
    if start >= end or (end - start).days > MAX_DAYS:
        raise Unprocessable(
            f"since must be before until, at most {MAX_DAYS} days apart", code="invalid-period",
            errors=[{"loc": ["query", "since"], "msg": "invalid period", "type": "value_error"}],
        )
    rows = await uow.run(lambda session: service.compute(
        session=session, since=datetime.combine(start, time(), UTC), until=datetime.combine(end, time(), UTC),
        now=now, group_by=group_by, interval=interval,
    ))
    if format == "csv":
        flat = service.csv_rows(rows)
        out = io.StringIO()
        fields = list(flat[0]) if flat else list(service.CSV_COLUMNS)
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)
        return Response(out.getvalue(), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="metrics-{start}-{end}.csv"'})
    return Metrics(since=start.isoformat(), until=end.isoformat(), group_by=group_by, interval=interval, rows=rows)  # type: ignore[arg-type]
