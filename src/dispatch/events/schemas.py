from __future__ import annotations

from datetime import datetime
from typing import Any

from dispatch.events.vocabulary import EventType
from dispatch.schemas import ResponseBody


class JobEventPublic(ResponseBody):
    id: int
    job_id: int
    type: EventType
    actor: str
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any]
