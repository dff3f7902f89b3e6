"""A job's life as the people in it act it out: the dispatcher assigns, the technician's phone
taps through the statuses, the timeline records it. Factories return ``(technician, job,
phone)``, where ``phone`` is the headers of the technician's own key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from support.api import Api

Json = dict[str, Any]


def _id(thing: int | Mapping[str, Any]) -> int:
    return thing if isinstance(thing, int) else thing["id"]


# Status changes ------------------------------------------------------------------------------


def send_status(
    api: Api,
    job: int | Mapping[str, Any],
    status: str,
    *,
    phone: Mapping[str, str] | None = None,
    at: datetime | None = None,
    **extra: Any,
) -> Any:
    """One status change as ``phone`` sends it (the dispatcher's key without one), with the
    device time ``at`` (now by default); the response, whatever it is."""
    body = {"status": status, "at": (at or api.clock.now()).isoformat(), **extra}
    return api.post(f"/v1/jobs/{_id(job)}/status", body, headers=dict(phone) if phone else None)


def tap(
    api: Api,
    job: int | Mapping[str, Any],
    *statuses: str,
    phone: Mapping[str, str] | None = None,
    at: datetime | None = None,
    **extra: Any,
) -> Json:
    """Tap through ``statuses`` in order (``at`` and ``extra`` go with each), each accepted
    (200); the job after the last tap."""
    assert statuses, "tap at least one status"
    for status in statuses:
        r = send_status(api, job, status, phone=phone, at=at, **extra)
        assert r.status_code == 200, r.text
    return r.json()


# The timeline --------------------------------------------------------------------------------


def events_of(
    api: Api,
    job: int | Mapping[str, Any],
    type: str | None = None,
    *,
    who: str = "dispatcher",
    headers: Mapping[str, str] | None = None,
) -> list[Json]:
    """The job's whole timeline, every page, oldest first; only events of ``type`` if given."""
    items: list[Json] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        r = api.get(f"/v1/jobs/{_id(job)}/events", who=who, headers=dict(headers) if headers else None, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return [e for e in items if type is None or e["type"] == type]


def event_types(api: Api, job: int | Mapping[str, Any], **kw: Any) -> list[str]:
    """The types on the job's timeline, oldest first."""
    return [e["type"] for e in events_of(api, job, **kw)]


# Factories -----------------------------------------------------------------------------------


def assign(api: Api, job: int | Mapping[str, Any], technician: int | Mapping[str, Any], reason: str = "test") -> Json:
    """The dispatcher gives the job to this technician by hand; the assigned job."""
    r = api.post(f"/v1/jobs/{_id(job)}/assign", {"technician_id": _id(technician), "reason": reason})
    assert r.status_code == 200, r.text
    return r.json()


def assigned_job(api: Api, *, capacity: int = 10, **job_fields: Any) -> tuple[Json, Json, dict[str, str]]:
    """A new job (``job_fields`` as for job_body) assigned by hand to a new technician with
    room for ``capacity`` jobs."""
    tech = api.technician(capacity=capacity)
    job = assign(api, api.job(**job_fields), tech)
    return tech, job, api.as_technician(tech["id"])


def dispatched_job(api: Api, *, or_earlier: bool = False, **tech_fields: Any) -> tuple[Json, Json, dict[str, str]]:
    """A new technician (``tech_fields`` as for Api.technician) and a new job, dispatched to
    them. With ``or_earlier`` an earlier technician, free again and as near, may be the one sent
    (and is the one returned); otherwise the new technician must be."""
    tech = api.technician(**tech_fields)
    job = api.job()
    r = api.post(f"/v1/jobs/{job['id']}/dispatch")
    assert r.status_code == 200, r.text
    chosen = r.json()["technician_id"]
    if chosen != tech["id"]:
        assert or_earlier, f"dispatch sent technician {chosen}, not the new one ({tech['id']})"
        tech = api.get(f"/v1/technicians/{chosen}").json()
    return tech, r.json()["job"], api.as_technician(tech["id"])


def on_site_job(
    api: Api, *, travel: timedelta | None = None, or_earlier: bool = False, **tech_fields: Any
) -> tuple[Json, Json, dict[str, str]]:
    """A dispatched job (see dispatched_job) whose technician is at the customer's now. With
    ``travel`` they tapped en route first and the clock moved on by the drive; without, they
    arrived at once."""
    tech, job, phone = dispatched_job(api, or_earlier=or_earlier, **tech_fields)
    if travel is not None:
        tap(api, job, "en_route", phone=phone)
        api.clock.advance(travel)
    return tech, tap(api, job, "on_site", phone=phone), phone


def completed_job(api: Api, **tech_fields: Any) -> tuple[Json, Json, dict[str, str]]:
    """A dispatched job fixed on the first visit: 20 minutes' drive, 40 on site."""
    tech, job, phone = on_site_job(api, travel=timedelta(minutes=20), **tech_fields)
    api.clock.advance(minutes=40)
    return tech, tap(api, job, "completed", phone=phone), phone


def add_outlet(api: Api, code: str = "shop-1", name: str | None = None) -> Json:
    """A retail outlet the admin signed up; its body carries its first key (``api_key``)."""
    r = api.post("/v1/outlets", {"code": code, "name": name or code}, who="admin")
    assert r.status_code == 201, r.text
    return r.json()
