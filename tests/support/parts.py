"""A stockroom: warehouse staff's locations and catalogue, shelf counts, and jobs asking for parts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from support.api import Api

CENTRAL = {"code": "CENTRAL", "name": "Central warehouse, Łódź", "kind": "central", "lat": 51.7592, "lon": 19.4560}
NEAR_BRANCH = {"code": "WAW-C", "name": "Warsaw Centre", "kind": "branch", "lat": 52.2350, "lon": 21.0100}
SOUTH_BRANCH = {
    "code": "WAW-S",
    "name": "Warsaw South",
    "kind": "branch",
    "lat": 52.1800,
    "lon": 21.0200,
    "delivery_hours": 6,
}
# The category is spelled as people type it: the catalogue normalises it to "washing machine".
BELT = {"sku": "BELT-1200", "name": "Drum belt 1200", "categories": ["Washing  Machine"], "lead_time_hours": 72}


def set_up_stockroom(
    api: Api,
    locations: Iterable[Mapping[str, Any]] = (CENTRAL, NEAR_BRANCH, SOUTH_BRANCH),
    parts: Iterable[Mapping[str, Any]] = (BELT,),
) -> Api:
    """Warehouse staff add ``locations`` and ``parts`` to the catalogue, no stock yet (by
    default a central warehouse, two Warsaw branches and a drum belt)."""
    for location in locations:
        r = api.post("/v1/locations", dict(location), who="warehouse")
        assert r.status_code == 201, r.text
    for part in parts:
        r = api.post("/v1/parts", dict(part), who="warehouse")
        assert r.status_code == 201, r.text
    return api


def set_stock(api: Api, code: str, on_hand: int, sku: str = "BELT-1200") -> dict[str, Any]:
    """Warehouse staff count the shelf: ``on_hand`` of ``sku`` at ``code``."""
    r = api.put(f"/v1/locations/{code}/stock/{sku}", {"on_hand": on_hand, "note": "count"}, who="warehouse")
    assert r.status_code == 200, r.text
    return r.json()


def stock_of(api: Api, code: str, sku: str = "BELT-1200") -> dict[str, Any]:
    r = api.get(f"/v1/locations/{code}/stock/{sku}", who="warehouse")
    assert r.status_code == 200, r.text
    return r.json()


def ask(
    api: Api,
    job_id: int,
    quantity: Any = 1,
    sku: str = "BELT-1200",
    headers: Mapping[str, str] | None = None,
    who: str = "dispatcher",
) -> Any:
    """The job asks for parts (from the phone with ``headers``); the response, whatever it is."""
    body = {"sku": sku, "quantity": quantity}
    return api.post(f"/v1/jobs/{job_id}/parts", body, who=who, headers=dict(headers) if headers else None)
