from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from dispatch.deps import DatabaseDep, NowDep, SettingsDep
from dispatch.limits import Slots

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        503: {"description": "Every request slot has been taken for too long, or the database is not reachable"}
    },
)
async def readyz(database: DatabaseDep, settings: SettingsDep, now: NowDep, request: Request) -> JSONResponse:
    """The process can serve: a request would get a slot, and its database answers.

    While /healthz says the process is alive, this says whether to send it traffic: a process
    whose every slot has been held for `DISPATCH_READINESS_SATURATED_SECONDS` serves nobody new.
    """
    slots: Slots = request.app.state.slots
    saturated_for = slots.saturated_for(now)
    if saturated_for > settings.readiness_saturated_seconds:
        return JSONResponse(
            {"status": "saturated", "slots": slots.limit, "saturated_seconds": round(saturated_for, 1)},
            status_code=503,
        )
    try:
        await anyio.to_thread.run_sync(database.ping)
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": database.dialect})
