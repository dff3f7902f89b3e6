from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.deps import NowDep, UnitOfWorkDep
from dispatch.errors import problem_responses
from dispatch.metrics import service
from dispatch.metrics.schemas import Metrics
from dispatch.paging import CursorQuery

router = APIRouter(prefix="/v1/metrics", tags=["metrics"], responses=problem_responses(400, 401, 403, 413, 422))


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
            le=service.MAX_LIMIT,
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
    report = await uow.run(
        lambda session: service.report(
            session=session,
            since=since,
            until=until,
            now=now,
            group_by=group_by,
            interval=interval,
            as_csv=format == "csv",
            limit=limit,
            cursor=cursor,
        )
    )
    if format == "csv":
        return Response(
            service.to_csv(report.rows),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{report.filename}"'},
        )
    # The rows are plain dicts in the model's field order, written as they are (service.render).
    return Response(report.json(), media_type="application/json")
