"""The delivery worker: claims due deliveries, sends them signed, records what happened.

At least once, in order per job and subscription:

* Only the head of each (subscription, job) chain is claimable: a delivery waits while an
  earlier event of the same job is still pending for the same subscription. A delivery that
  was given up (``failed``) no longer holds the chain back; it can be redelivered by hand.
* A claim is a lease written in a short transaction (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, so workers in several processes never claim the same row; SQLite has one
  writer at a time). The HTTP call is made outside any transaction; the outcome is written
  only by the worker that still holds the lease. A worker that dies mid-send leaves a lease
  that runs out, and the delivery is sent again (hence at least once: receivers deduplicate
  on ``webhook-id``).
* Failures are retried with exponential backoff and jitter (``webhook_backoff_*``) for
  ``webhook_retry_hours``; ``429``/``503`` with ``Retry-After`` wait at least that long;
  ``410 Gone`` turns the subscription off.

"Now" is the injectable clock: tests move it to make retries due instead of sleeping.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import anyio.to_thread
import httpx
from sqlalchemy import and_, exists, insert, literal_column, or_, select, update
from sqlalchemy.orm import aliased

from dispatch.clock import Clock
from dispatch.config import Settings
from dispatch.database.core import Database
from dispatch.events.models import JobEvent
from dispatch.idempotency import service as idempotency
from dispatch.jobs.models import Job
from dispatch.webhooks import signing
from dispatch.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from dispatch.webhooks.service import NOT_PUBLIC, addresses, is_private_host

log = logging.getLogger(__name__)

D = WebhookDelivery
_EARLIER = aliased(WebhookDelivery)


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscription_id: int
    url: str
    secret: str
    body: bytes
    problem: str | None = None  # why it cannot be sent at all (its attempt fails with this)


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    attempted_at: datetime
    status: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _due(now: datetime) -> Any:
    earlier_pending = exists().where(
        _EARLIER.subscription_id == D.subscription_id,
        _EARLIER.job_id == D.job_id,
        _EARLIER.event_id < D.event_id,
        # A literal, not a bound parameter: with prepared statements PostgreSQL plans generically
        # and a parameter would not match the partial index's `state = 'pending'`.
        _EARLIER.state == literal_column("'pending'"),
    )
    active = exists().where(WebhookSubscription.id == D.subscription_id, WebhookSubscription.active.is_(True))
    return and_(
        D.state == literal_column("'pending'"),
        D.next_attempt_at <= now,
        or_(D.leased_until.is_(None), D.leased_until <= now),
        active,
        ~earlier_pending,
    )


def claim(*, database: Database, now: datetime, worker_id: str, limit: int, lease: timedelta) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries (heads of their job's chain) and build their bodies."""
    with database.transaction() as session:
        ids = list(
            session.scalars(
                select(D.id)
                .where(_due(now))
                .order_by(D.next_attempt_at, D.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=D)
            )
        )
        if not ids:
            return []
        session.execute(update(D).where(D.id.in_(ids)).values(leased_until=now + lease, leased_by=worker_id))
        rows = session.execute(
            select(
                D.id.label("delivery_id"),
                D.subscription_id,
                D.event_type,
                WebhookSubscription.url,
                WebhookSubscription.secret,
                JobEvent.id.label("event_id"),
                JobEvent.type.label("timeline_type"),
                JobEvent.actor,
                JobEvent.occurred_at,
                JobEvent.recorded_at,
                JobEvent.data,
                Job.id.label("job_id"),
                Job.outlet_id,
                Job.external_ref,
            )
            .join(WebhookSubscription, WebhookSubscription.id == D.subscription_id)
            .join(JobEvent, JobEvent.id == D.event_id)
            .join(Job, Job.id == D.job_id)
            .where(D.id.in_(ids))
            .order_by(D.id)
        ).all()
    claimed = []
    for row in rows:
        item = Claimed(row.delivery_id, row.subscription_id, row.url, row.secret, b"")
        try:
            claimed.append(replace(item, body=_body(row)))
        except Exception:  # one bad row fails alone: its attempt is recorded, the batch goes on
            log.exception("delivery %s: the event could not be encoded", row.delivery_id)
            claimed.append(replace(item, problem="the event could not be encoded"))
    return claimed


def _body(row: Any) -> bytes:
    payload = {
        "type": row.event_type,
        "timestamp": row.recorded_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "event_id": row.event_id,
            "job_id": row.job_id,
            "outlet_id": row.outlet_id,
            "external_ref": row.external_ref,
            "event": {
                "type": row.timeline_type,
                "actor": row.actor,
                "occurred_at": row.occurred_at.isoformat().replace("+00:00", "Z"),
                "data": row.data,
            },
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def message_id(delivery_id: int) -> str:
    """The same on every attempt and redelivery of a delivery: receivers deduplicate on it."""
    return f"msg_{delivery_id}"


def send(client: httpx.Client, item: Claimed, *, now: datetime, allow_private: bool) -> Outcome:
    """One attempt. Whatever is wrong with this delivery (a URL the client cannot parse, a name
    that does not resolve, a receiver that fails) is its outcome, never an exception."""
    started = time.perf_counter()

    def done(status: int | None, error: str | None, retry_after: float | None = None) -> Outcome:
        return Outcome(
            item.delivery_id, now, status, _clean(error), int((time.perf_counter() - started) * 1000), retry_after
        )

    if item.problem is not None:
        return done(None, item.problem)
    try:
        url = httpx.URL(item.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise httpx.InvalidURL("not an http or https URL with a host")
    except (httpx.InvalidURL, ValueError):  # old rows, written before URLs were checked as httpx reads them
        return done(None, "invalid URL: the HTTP client cannot parse it; change the subscription's URL")
    headers, extensions = (
        signing.headers(item.secret, message_id(item.delivery_id), int(now.timestamp()), item.body),
        {},
    )
    if not allow_private:
        pinned = _pinned_destination(url)
        if pinned is None:
            return done(None, NOT_PUBLIC)
        # Connect to the address that was checked, not to whatever the name resolves to a moment
        # later (DNS rebinding); the name still goes in Host and in TLS (SNI and the certificate).
        headers["Host"] = url.netloc.decode("ascii")
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host
        url = url.copy_with(host=pinned)
    try:
        response = client.post(url, content=item.body, headers=headers, extensions=extensions)
    except httpx.TimeoutException as exc:
        return done(None, f"timed out: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return done(None, f"{type(exc).__name__}: {exc}")
    retry_after = _retry_after(response.headers.get("retry-after"), now) if response.status_code in (429, 503) else None
    return done(response.status_code, None if response.is_success else f"HTTP {response.status_code}", retry_after)


def _clean(error: str | None) -> str | None:
    """Fit for the column and for PostgreSQL text (no NUL, no control characters)."""
    if error is None:
        return None
    return "".join(c if c.isprintable() else " " for c in error)[:500]


def _pinned_destination(url: httpx.URL) -> str | None:
    """The one public address to connect to for ``url``, or None. Every address the name has
    must be public: a name that also points inside is refused. Why not is not said: "does not
    resolve" and "resolves inside" must read the same to the subscriber (NOT_PUBLIC)."""
    try:
        found = addresses(url)
    except (OSError, UnicodeError):
        return None
    if not found or any(is_private_host(a) for a in found):
        return None
    return found[0]


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None


def backoff(attempts: int, settings: Settings, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after ``attempts`` failures: exponential, capped, with
    "equal jitter" (half fixed, half random) so a recovering receiver is not hit by a wave."""
    ceiling = min(
        settings.webhook_backoff_max_seconds, settings.webhook_backoff_base_seconds * 2 ** min(attempts - 1, 30)
    )
    return ceiling / 2 + rng() * ceiling / 2


def record(*, database: Database, outcomes: list[Outcome], worker_id: str, now: datetime, settings: Settings) -> None:
    """Write what happened: every attempt is kept and counted; the state (succeeded, the next
    attempt) changes only for the deliveries this worker still holds (one statement for all the
    successes; failures one by one, as each gets its own next attempt)."""
    if not outcomes:
        return
    window = timedelta(hours=settings.webhook_retry_hours)
    succeeded: dict[int, list[int]] = {}  # status -> delivery ids
    for o in outcomes:
        if o.status is not None and 200 <= o.status < 300:
            succeeded.setdefault(o.status, []).append(o.delivery_id)
    failed = {o.delivery_id: o for o in outcomes if o.status is None or not 200 <= o.status < 300}
    ids = [o.delivery_id for o in outcomes]
    with database.transaction() as session:
        # Every attempt made counts, even by a worker whose lease ran out meanwhile: only the
        # state is the lease holder's to change (one statement, before ours lose their lease).
        session.execute(
            update(D)
            .where(D.id.in_(ids), or_(D.leased_by.is_(None), D.leased_by != worker_id))
            .values(attempts=D.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            insert(WebhookAttempt),
            [
                {
                    "delivery_id": o.delivery_id,
                    "attempted_at": o.attempted_at,
                    "status": o.status,
                    "error": o.error,
                    "duration_ms": o.duration_ms,
                }
                for o in outcomes
            ],
        )
        for status, ids in succeeded.items():
            # Only rows whose lease is still ours: a worker whose lease ran out was overtaken.
            session.execute(
                update(D)
                .where(D.id.in_(ids), D.leased_by == worker_id)
                .values(
                    state=DeliveryState.succeeded,
                    delivered_at=now,
                    attempts=D.attempts + 1,
                    last_status=status,
                    last_error=None,
                    leased_until=None,
                    leased_by=None,
                )
                .execution_options(synchronize_session=False)
            )
        if not failed:
            return
        gone: set[int] = set()
        for delivery in session.scalars(
            select(D).where(D.id.in_(list(failed)), D.leased_by == worker_id).with_for_update()
        ):
            outcome = failed[delivery.id]
            delivery.attempts += 1
            delivery.last_status, delivery.last_error = outcome.status, outcome.error
            delivery.leased_until = delivery.leased_by = None
            if outcome.status == 410:
                delivery.state = DeliveryState.failed
                gone.add(delivery.subscription_id)
            elif now >= delivery.retry_from + window:
                delivery.state = DeliveryState.failed
            else:
                wait = backoff(delivery.attempts, settings)
                if outcome.retry_after is not None:
                    wait = max(wait, min(outcome.retry_after, settings.webhook_backoff_max_seconds))
                delivery.next_attempt_at = now + timedelta(seconds=wait)
        if gone:
            session.execute(
                update(WebhookSubscription)
                .where(WebhookSubscription.id.in_(gone))
                .values(active=False, disabled_reason="the receiver answered 410 Gone", updated_at=now)
            )


class Worker:
    """One delivery worker: ``run_once`` is a claim-send-record cycle; ``drain`` repeats it
    until nothing is due; ``serve_forever`` polls until stopped."""

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        clock: Clock,
        client: httpx.Client | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock
        self.worker_id = worker_id or new_worker_id()
        self.client = client or httpx.Client(
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.webhook_concurrency * 2),
        )
        self.pool = ThreadPoolExecutor(max_workers=settings.webhook_concurrency, thread_name_prefix="webhook")
        self.stopping = threading.Event()
        self._last_purge = float("-inf")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    def run_once(self) -> int:
        """Claim a batch, send it, record it. Returns how many were attempted."""
        now = self.clock.now()
        settings = self.settings
        claimed = claim(
            database=self.database,
            now=now,
            worker_id=self.worker_id,
            limit=settings.webhook_batch_size,
            lease=timedelta(seconds=settings.webhook_lease_seconds),
        )
        if not claimed:
            return 0
        outcomes = list(self.pool.map(self._send, claimed))
        record(
            database=self.database, outcomes=outcomes, worker_id=self.worker_id, now=self.clock.now(), settings=settings
        )
        return len(claimed)

    def _send(self, item: Claimed) -> Outcome:
        """One delivery's attempt inside its own error boundary: whatever goes wrong with it is
        its outcome, so the batch's results are always recorded."""
        now = self.clock.now()
        try:
            return send(self.client, item, now=now, allow_private=self.settings.webhook_allow_private_urls)
        except Exception as exc:
            log.exception("delivery %s: sending failed unexpectedly", item.delivery_id)
            return Outcome(item.delivery_id, now, None, f"internal error: {type(exc).__name__}", 0)

    def drain(self, max_cycles: int = 100_000) -> int:
        """Cycles until nothing is due now. Returns the number of attempts made."""
        total = 0
        for _ in range(max_cycles):
            if self.stopping.is_set():
                break
            sent = self.run_once()
            if not sent:
                break
            total += sent
        return total

    def housekeeping(self) -> None:
        """Every few minutes: purge idempotency keys past their time."""
        if time.monotonic() - self._last_purge < 300:
            return
        self._last_purge = time.monotonic()
        removed = idempotency.purge(database=self.database, now=self.clock.now())
        if removed:
            log.info("purged %d idempotency keys", removed)

    def serve_forever(self) -> None:
        log.info("webhook worker %s started", self.worker_id)
        while not self.stopping.is_set():
            try:
                self.housekeeping()
                sent = self.drain()
            except Exception:
                log.exception("webhook worker cycle failed")
                sent = 0
            if not sent:
                self.stopping.wait(self.settings.webhook_poll_seconds)
        log.info("webhook worker %s stopped", self.worker_id)


@asynccontextmanager
async def run_in_background(*, database: Database, settings: Settings, clock: Clock) -> AsyncIterator[None]:
    """The embedded worker of ``dispatch serve``: a thread of the server process, started and
    stopped with the app's lifespan (``DISPATCH_WEBHOOK_WORKER=false`` leaves it to
    ``dispatch worker``). Every server process runs one; leases keep them apart."""
    if not settings.webhook_worker:
        yield
        return
    worker = Worker(database=database, settings=settings, clock=clock)
    thread = threading.Thread(target=worker.serve_forever, name="webhook-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stopping.set()
        await anyio.to_thread.run_sync(thread.join, settings.webhook_timeout_seconds + 5)
        worker.close()
