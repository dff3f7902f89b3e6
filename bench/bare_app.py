"""The yardstick for intake: a bare FastAPI app with one endpoint of the same kind.

A sync ``POST`` taking a small pydantic body and answering 201 with a small pydantic model,
no database, no auth. Served by the same uvicorn command and driven by the same load as the
real app, so the ratio between them is the cost of everything the service does per job.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field


class Customer(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = None
    address: str = Field(min_length=3, max_length=500)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Product(BaseModel):
    category: str = Field(min_length=1, max_length=64)
    model: str | None = None
    serial: str | None = None


class JobIn(BaseModel):
    customer: Customer
    product: Product
    fault: str = Field(min_length=1, max_length=2000)


class JobOut(BaseModel):
    id: int
    status: str
    category: str
    lat: float
    lon: float


app = FastAPI()
_counter = 0


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/jobs", status_code=201, response_model=JobOut)
def create_job(body: JobIn) -> JobOut:
    global _counter
    _counter += 1
    return JobOut(
        id=_counter, status="new", category=body.product.category, lat=body.customer.lat, lon=body.customer.lon
    )
