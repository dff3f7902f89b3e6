from __future__ import annotations

from datetime import datetime
from typing import Any

from dispatch.schemas import ResponseBody


class JobEventPublic(ResponseBody):
    id: int
    job_id: int
    type: str
    actor: str
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any]
