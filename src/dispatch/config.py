"""Typed settings, read from the environment (``DATABASE_URL``, ``DISPATCH_*``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCH_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "DISPATCH_DATABASE_URL")
    )
    photo_dir: Path | None = None
    admin_key: str | None = None

    # SLA targets are policies in the database (GET/PUT /v1/sla/policies). These tune the watcher:
    # how often it looks, and what its breach predictions assume.
    sla_watcher_interval_seconds: float = Field(default=30.0, gt=0)
    # Run the watcher inside `dispatch serve` (the embedded default); production runs
    # `dispatch worker` processes instead and turns this off.
    sla_watcher_in_app: bool = False
    sla_travel_speed_kmh: float = Field(default=30.0, gt=0)
    # The time one job takes a technician, travel included, for the "more work than time" prediction.
    sla_hours_per_job: float = Field(default=1.5, gt=0)
    # How far in the future a device or outlet clock may be before its timestamp is refused.
    clock_skew_seconds: int = Field(default=300, ge=0)
    # How long ago a repair request may say it was reported (an outlet sending its backlog late).
    reported_at_max_age_days: int = Field(default=30, ge=1)

    # Dispatch.
    auto_dispatch: bool = False
    dispatch_first_radius_km: float = Field(default=5.0, gt=0)
    dispatch_max_radius_km: float | None = Field(default=None, gt=0)
    dispatch_candidates_shown: int = Field(default=10, ge=1, le=100)
    # A branch created without its own delivery time gets this: central warehouse to branch.
    parts_delivery_hours: float = Field(default=8.0, ge=0)

    # Geocoding through geopy; None means jobs without coordinates wait for a dispatcher.
    geocoder: Literal["nominatim"] | None = None
    geocoder_domain: str | None = None
    geocoder_scheme: Literal["http", "https"] = "https"
    geocoder_timeout_seconds: float = Field(default=3.0, gt=0)
    geocoder_user_agent: str = "field-dispatch"

    # SQLite only: FULL survives power loss with WAL; NORMAL is faster. SLA records live here.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # PostgreSQL: test each pooled connection before use. Costs a round trip per request; off,
    # a request that meets a connection the server closed fails once and the pool is renewed.
    db_pre_ping: bool = False

    # How long a key that authenticated is trusted without asking the database again; a
    # revoked key stops working within this time on other app processes. 0 turns it off.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)

    # Requests handled at once per process; more wait their turn without holding a thread.
    # The database pool and the worker threads are sized from it.
    max_concurrent_requests: int = Field(default=32, ge=1, le=1000)

    # JSON bodies are small; photo uploads get their own limit where they are accepted.
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # Slow clients (docs/decisions.md, "Slow and hostile clients"). A body is read before its
    # request takes a slot, and must keep coming: silent this long, or slower on average than
    # this many seconds plus its size at the minimum rate, it is cut with 408.
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    body_min_bytes_per_second: int = Field(default=16 * 1024, ge=1)
    # Request bodies still arriving, in all, per process (half for callers not yet authenticated).
    body_spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    # /readyz answers 503 `saturated` once every slot has been taken this long without a break.
    readiness_saturated_seconds: float = Field(default=10.0, gt=0)

    # Sign-off photos (issue 5): upload limits, and how close in place and time a photo's own
    # EXIF must be to the visit to be `verified`.
    photo_max_bytes: int = Field(default=15 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024)
    photo_max_pixels: int = Field(default=50_000_000, ge=10_000, le=200_000_000)
    photo_max_distance_m: float = Field(default=250.0, gt=0)
    photo_time_slack_minutes: float = Field(default=30.0, ge=0)
    photo_thumbnail_px: int = Field(default=320, ge=32, le=2048)
    # Decoding in bounded memory (docs/photos.md): the served copy's largest size, what one upload
    # may hold at its peak (larger images are decoded reduced, or refused if their format cannot
    # be), and how many uploads are decoded at once per process (the others wait their turn).
    photo_served_max_pixels: int = Field(default=13_000_000, ge=100_000, le=200_000_000)
    photo_decode_budget_mb: int = Field(default=100, ge=16, le=4096)
    photo_concurrent_decodes: int = Field(default=2, ge=1, le=64)
    # An unreached customer is called again after this long.
    callback_retry_minutes: float = Field(default=120.0, gt=0)
    # Outlet integration (docs/integration.md). Idempotency keys are kept this long; a key
    # whose first request has held it this long without answering (its process died) is free.
    idempotency_key_hours: float = Field(default=24.0, gt=0)
    idempotency_lock_seconds: float = Field(default=60.0, gt=0)
    # A rotated key keeps working this long beside its successor.
    key_rotation_grace_hours: float = Field(default=24.0, ge=0)
    # Requests per second per API key (a token bucket per process; 0 turns it off), and the burst.
    rate_limit_per_second: float = Field(default=50.0, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    # Failed authentication (a 401) per client address, before any key lookup: each guess is a
    # database read. 0 turns it off. Behind a proxy, let uvicorn read the client's address
    # (`--forwarded-allow-ips`), or every client shares the proxy's.
    auth_failures_per_minute: float = Field(default=60.0, ge=0)
    auth_failures_burst: int = Field(default=30, ge=1)
    # Webhooks: the delivery worker runs inside `dispatch serve` unless turned off here
    # (then run `dispatch worker`). Loopback and private addresses are refused as
    # subscriber URLs unless allowed (development and tests only).
    webhook_worker: bool = True
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_batch_size: int = Field(default=100, ge=1, le=10_000)
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    webhook_retry_hours: float = Field(default=72.0, gt=0)
    webhook_backoff_base_seconds: float = Field(default=5.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_allow_private_urls: bool = False

    @field_validator("admin_key")
    @classmethod
    def _admin_key_is_strong(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("DISPATCH_ADMIN_KEY must be at least 16 characters")
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the usual postgres:// spellings and use psycopg 3.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{(self.data_dir / 'dispatch.sqlite3').resolve()}"

    @property
    def resolved_photo_dir(self) -> Path:
        return self.photo_dir or self.data_dir / "photos"
