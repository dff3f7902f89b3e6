"""The API as the people who use it: a test client with a key per role, and a repair request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from dispatch.auth import service as auth
from dispatch.auth.models import Role
from dispatch.clock import FrozenClock
from dispatch.database.core import Database

# Where job_body's customer lives: Marszałkowska 104, central Warsaw.
CUSTOMER = (52.2319, 21.0067)
STAFF_ROLES = (Role.admin, Role.dispatcher, Role.supervisor, Role.warehouse, Role.customer_service)


def staff_keys(database: Database, now: datetime) -> dict[str, str]:
    """A fresh key for each staff role, by role name."""
    keys: dict[str, str] = {}
    with database.transaction() as session:
        for role in STAFF_ROLES:
            _, keys[role.value] = auth.issue(session=session, role=role, now=now)
    return keys


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class Api:
    """A test client with a key per role, so tests read like the people who act."""

    client: TestClient
    database: Database
    clock: FrozenClock
    keys: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return bearer(self.keys[who])

    def key_for(self, role: Role, *, technician_id: int | None = None, outlet_id: int | None = None) -> str:
        name = f"{role.value}:{technician_id or outlet_id or ''}"
        if name not in self.keys:
            with self.database.transaction() as session:
                _, secret = auth.issue(
                    session=session,
                    role=role,
                    now=self.clock.now(),
                    technician_id=technician_id,
                    outlet_id=outlet_id,
                )
            self.keys[name] = secret
        return name

    def as_technician(self, technician_id: int) -> dict[str, str]:
        """The technician's phone: a key bound to them."""
        return self.headers(self.key_for(Role.technician, technician_id=technician_id))

    def as_outlet(self, outlet_id: int) -> dict[str, str]:
        return self.headers(self.key_for(Role.outlet, outlet_id=outlet_id))

    def get(self, path: str, who: str = "dispatcher", **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers=kw.pop("headers", None) or self.headers(who), **kw)

    def post(self, path: str, json: Any = None, who: str = "dispatcher", **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.post(path, json=json, headers=kw.pop("headers", None) or self.headers(who), **kw)

    def patch(self, path: str, json: Any = None, who: str = "dispatcher", **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.patch(path, json=json, headers=kw.pop("headers", None) or self.headers(who), **kw)

    def put(self, path: str, json: Any = None, who: str = "dispatcher", **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.put(path, json=json, headers=kw.pop("headers", None) or self.headers(who), **kw)

    # Factories ---------------------------------------------------------------------------

    def technician(self, **fields: Any) -> dict[str, Any]:
        """A technician at the Palace of Culture, about 0.5 km from job_body's customer."""
        body = {"name": "Tech", "skills": ["washing machine"], "lat": 52.2297, "lon": 21.0122, "capacity": 1}
        body.update(fields)
        r = self.post("/v1/technicians", body)
        assert r.status_code == 201, r.text
        return r.json()

    def job(self, who: str = "dispatcher", headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        """A repair request (job_body with ``fields`` changed), received."""
        r = self.post("/v1/jobs", job_body(**fields), who=who, headers=headers)
        assert r.status_code == 201, r.text
        return r.json()


def job_body(**fields: Any) -> dict[str, Any]:
    """A washing machine that does not spin, at Marszałkowska 104; ``customer`` and ``product``
    are merged into the defaults, anything else replaces them."""
    customer = {
        "name": "Maria Dąbrowska",
        "phone": "+48 22 555 01 00",
        "address": "Marszałkowska 104, Warszawa",
        "lat": CUSTOMER[0],
        "lon": CUSTOMER[1],
    }
    customer.update(fields.pop("customer", {}))
    product = {"category": "washing machine", "model": "WM-100", "serial": "SN1"}
    product.update(fields.pop("product", {}))
    body: dict[str, Any] = {"customer": customer, "product": product, "fault": "Drum does not spin"}
    body.update(fields)
    return body
