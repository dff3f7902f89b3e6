"""Webhooks: subscriptions, the outbox written with every job change, and a delivery worker
that signs (Standard Webhooks), retries with backoff, keeps each job's events in order and
loses nothing while a real receiver on localhost fails, hangs, goes away and comes back.
Retries are made due by moving the frozen clock, never by sleeping through a backoff."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from support.api import bearer, job_body
from support.moments import T0
from support.receiver import Receiver
from support.workflow import add_outlet, assign, tap

from dispatch.events import service as events
from dispatch.events.vocabulary import EventType
from dispatch.webhooks import signing
from dispatch.webhooks.models import WebhookDelivery, WebhookSubscription
from dispatch.webhooks.worker import Worker


@pytest.fixture
def hook_settings(settings):
    settings.webhook_allow_private_urls = True  # the receiver is on 127.0.0.1
    settings.webhook_timeout_seconds = 0.5
    settings.webhook_batch_size = 50
    return settings


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def worker(hook_settings, api):
    w = Worker(database=api.database, settings=hook_settings, clock=api.clock)
    yield w
    w.close()


def _outlet(api, code="shop-1"):
    """An outlet and the headers of its key."""
    shop = add_outlet(api, code)
    return shop, bearer(shop["api_key"])


def _subscribe(api, headers, url, types=("job.created", "job.status_changed", "job.assigned")):
    r = api.post("/v1/webhooks", {"url": url, "event_types": list(types)}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def _verify(secret: str, item) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, f"{item.msg_id}.{item.timestamp}.".encode() + item.body, hashlib.sha256).digest()
    ).decode()
    return any(sig == f"v1,{expected}" for sig in item.signature.split())


def _drain_until_quiet(api, worker, *, step=timedelta(hours=1), rounds=10):
    """Send what is due; move the clock past every backoff; repeat."""
    for _ in range(rounds):
        worker.drain()
        api.clock.advance(step)
    worker.drain()


def _deliveries(api, **where):
    with api.database.transaction(write=False) as session:
        stmt = select(WebhookDelivery).order_by(WebhookDelivery.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(WebhookDelivery, k) == v)
        return list(session.scalars(stmt))


# Signatures -------------------------------------------------------------------------------


def test_signatures_match_the_standard_webhooks_known_answer():
    # The reference vector from the Standard Webhooks specification's libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_signatures_agree_with_the_reference_library():
    standardwebhooks = pytest.importorskip("standardwebhooks")
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    when = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    body = '{"type":"job.created"}'
    theirs = standardwebhooks.Webhook(secret).sign("msg_1", when, body)
    assert signing.sign(secret, "msg_1", int(when.timestamp()), body.encode()) == theirs
    assert signing.verify(secret, "msg_1", str(int(when.timestamp())), body.encode(), f"v1,bogus {theirs}")
    assert not signing.verify(secret, "msg_1", str(int(when.timestamp())), b"tampered", theirs)


# Subscriptions ----------------------------------------------------------------------------


def test_an_outlet_subscribes_and_sees_only_its_own_subscriptions(api, hook_settings, receiver):
    _, a = _outlet(api, "a")
    _, b = _outlet(api, "b")
    sub = _subscribe(api, a, receiver.url)
    assert sub["secret"].startswith("whsec_") and sub["active"] is True
    assert "secret" not in api.get(f"/v1/webhooks/{sub['id']}", headers=a).json()
    assert api.get(f"/v1/webhooks/{sub['id']}", headers=b).status_code == 404
    assert api.get("/v1/webhooks", headers=b).json()["items"] == []
    assert api.get(f"/v1/webhooks/{sub['id']}/deliveries", headers=b).status_code == 404
    assert api.patch(f"/v1/webhooks/{sub['id']}", {"active": False}, headers=b).status_code == 404
    assert api.client.delete(f"/v1/webhooks/{sub['id']}", headers=b).status_code == 404
    assert [s["id"] for s in api.get("/v1/webhooks", who="admin").json()["items"]] == [sub["id"]]


def test_loopback_and_private_urls_are_refused_unless_allowed(api):
    _, headers = _outlet(api)
    for url in (
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
    ):
        r = api.post("/v1/webhooks", {"url": url, "event_types": ["job.created"]}, headers=headers)
        assert r.status_code == 422 and r.json()["code"] == "webhook-url-not-allowed", url
    r = api.post("/v1/webhooks", {"url": "ftp://example.com/x", "event_types": ["job.created"]}, headers=headers)
    assert r.status_code == 422
    r = api.post("/v1/webhooks", {"url": "https://example.com/x", "event_types": ["job.nope"]}, headers=headers)
    assert r.status_code == 422


def test_ipv4_addresses_wrapped_in_ipv6_are_refused_too(api):
    _, headers = _outlet(api)
    for url in (
        "http://[::ffff:127.0.0.1]/x",
        "http://[2002:7f00:1::]/x",
        "http://[64:ff9b::a9fe:a9fe]/x",
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/x",
    ):  # mapped, 6to4, NAT64, Teredo (to 10.0.0.1)
        r = api.post("/v1/webhooks", {"url": url, "event_types": ["job.created"]}, headers=headers)
        assert r.status_code == 422 and r.json()["code"] == "webhook-url-not-allowed", url


def test_the_worker_connects_to_the_address_it_checked_not_to_a_rebound_name(monkeypatch):
    """DNS rebinding: the name is public when checked and private a moment later. The worker
    resolves once, checks, and sends to that address with the name in Host and in TLS."""
    import socket

    import httpx

    from dispatch.webhooks import worker as delivery

    answers = iter(["93.184.216.34", "169.254.169.254", "169.254.169.254"])
    lookups = []

    def rebinding_dns(host, port, *args, **kwargs):
        lookups.append(host)
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    seen = []
    client = httpx.Client(transport=httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(204)))
    item = delivery.Claimed(1, 1, "https://hooks.shop.example:8443/in?x=1", signing.new_secret(), b"{}")
    outcome = delivery.send(client, item, now=datetime(2026, 3, 10, tzinfo=UTC), allow_private=False)
    assert outcome.status == 204 and lookups == ["hooks.shop.example"]
    [request] = seen
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["host"] == "hooks.shop.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.shop.example"
    # A name that resolves inside is refused before anything is sent.
    inside = delivery.send(client, item, now=datetime(2026, 3, 10, tzinfo=UTC), allow_private=False)
    assert inside.status is None and inside.error == "refused: not a public address" and len(seen) == 1


# Delivery ---------------------------------------------------------------------------------


def test_a_new_job_reaches_the_outlets_receiver_signed(api, worker, receiver):
    shop, headers = _outlet(api)
    sub = _subscribe(api, headers, receiver.url, types=["job.created"])
    job = api.job(headers=headers, external_ref="ORD-9")
    assert worker.drain() == 1
    [item] = receiver.accepted
    assert _verify(sub["secret"], item)
    assert item.msg_id.startswith("msg_") and int(item.timestamp) == int(api.clock.now().timestamp())
    payload = item.payload
    assert payload["type"] == "job.created"
    assert payload["data"]["job_id"] == job["id"] and payload["data"]["external_ref"] == "ORD-9"
    assert payload["data"]["outlet_id"] == shop["id"]
    assert payload["data"]["event"]["data"]["due_at"] == job["due_at"].replace("Z", "+00:00")
    listed = api.get(f"/v1/webhooks/{sub['id']}/deliveries", headers=headers).json()["items"]
    assert [(d["state"], d["attempts"], d["last_status"]) for d in listed] == [("succeeded", 1, 200)]
    detail = api.get(f"/v1/webhooks/{sub['id']}/deliveries/{listed[0]['id']}", headers=headers).json()
    assert [a["status"] for a in detail["attempts_made"]] == [200]
    assert worker.drain() == 0  # nothing is sent twice


def test_only_the_outlets_own_jobs_and_asked_for_types_are_delivered(api, worker, receiver):
    _, a = _outlet(api, "a")
    _, b = _outlet(api, "b")
    _subscribe(api, a, receiver.url, types=["job.completed"])
    everything = Receiver().start()
    try:
        _subscribe(api, api.headers("admin"), everything.url, types=["job.created"])
        tech = api.technician()
        mine = api.job(headers=a)
        api.job(headers=b)
        api.job()
        assign(api, mine, tech, reason="closer")
        tap(api, mine, "en_route", "on_site", "completed", phone=api.as_technician(tech["id"]), at=T0)
        worker.drain()
        assert [r.payload["type"] for r in receiver.accepted] == ["job.completed"]
        assert receiver.accepted[0].payload["data"]["job_id"] == mine["id"]
        assert len(everything.accepted) == 3  # the admin's subscription without an outlet sees every job
    finally:
        everything.stop()


def test_a_change_that_rolls_back_sends_nothing(api, worker, receiver):
    _, headers = _outlet(api)
    _subscribe(api, headers, receiver.url)
    job = api.job(headers=headers)
    before = len(_deliveries(api))
    with pytest.raises(RuntimeError), api.database.transaction() as session:
        events.record(
            session=session,
            job_id=job["id"],
            type=EventType.status_changed,
            actor="test",
            now=api.clock.now(),
            to="cancelled",
        )
        assert len(list(session.scalars(select(WebhookDelivery)))) == before + 1  # written with the event
        raise RuntimeError("the change fails after its event was written")
    assert len(_deliveries(api)) == before


def test_failures_are_retried_with_backoff_and_a_jobs_events_stay_in_order(api, worker, receiver, hook_settings):
    _, headers = _outlet(api)
    sub = _subscribe(api, headers, receiver.url)
    tech = api.technician()
    receiver.mode = "fail"
    job = api.job(headers=headers)
    assign(api, job, tech, reason="closer")
    tap(api, job, "en_route", "on_site", phone=api.as_technician(tech["id"]), at=T0)
    assert worker.drain() == 1  # only the job's first event is tried: the rest wait behind it
    assert [r.payload["type"] for r in receiver.seen] == ["job.created"]
    first = _deliveries(api)[0]
    assert first.state == "pending" and first.attempts == 1 and first.last_status == 500
    wait = (first.next_attempt_at - api.clock.now()).total_seconds()
    assert hook_settings.webhook_backoff_base_seconds / 2 <= wait <= hook_settings.webhook_backoff_base_seconds
    assert worker.drain() == 0  # not due yet
    delays = []
    for _ in range(4):  # the backoff grows
        api.clock.set(_deliveries(api)[0].next_attempt_at)
        worker.drain()
        d = _deliveries(api)[0]
        delays.append((d.next_attempt_at - api.clock.now()).total_seconds())
    assert delays == sorted(delays) and delays[-1] > 4 * hook_settings.webhook_backoff_base_seconds
    receiver.mode = "ok"
    _drain_until_quiet(api, worker)
    ids = receiver.ids()
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 4  # created, assigned, en_route, on_site
    assert all(_verify(sub["secret"], r) for r in receiver.accepted)
    attempts = api.get(f"/v1/webhooks/{sub['id']}/deliveries/{first.id}", headers=headers).json()["attempts_made"]
    assert attempts[0]["status"] == 200 and all(a["status"] == 500 for a in attempts[1:])
    # The same webhook-id on every attempt of a delivery.
    assert {r.msg_id for r in receiver.seen if r.payload["data"]["event_id"] == ids[0]} == {f"msg_{first.id}"}


def test_a_receiver_that_hangs_times_out_and_is_retried(api, worker, receiver):
    _, headers = _outlet(api)
    sub = _subscribe(api, headers, receiver.url, types=["job.created"])
    receiver.mode, receiver.slow_seconds = "slow", 1.5
    api.job(headers=headers)
    worker.drain()
    [delivery] = _deliveries(api)
    assert delivery.state == "pending" and delivery.last_status is None and "timed out" in delivery.last_error
    receiver.mode = "ok"
    api.clock.advance(minutes=5)
    worker.drain()
    assert _deliveries(api)[0].state == "succeeded"
    # The receiver may have processed the slow one too: at least once, same webhook-id.
    assert {r.msg_id for r in receiver.accepted} == {f"msg_{delivery.id}"}
    assert all(_verify(sub["secret"], r) for r in receiver.accepted)


def test_a_receiver_down_for_hours_gets_everything_once_back_in_order(api, worker, receiver):
    _, headers = _outlet(api)
    _subscribe(api, headers, receiver.url)
    tech = api.technician(capacity=10)
    receiver.stop()  # connection refused from now on
    jobs = [api.job(headers=headers) for _ in range(8)]
    for job in jobs[:4]:
        assign(api, job, tech, reason="closer")
        tap(api, job, "en_route", phone=api.as_technician(tech["id"]), at=T0)
    for _ in range(6):  # six hours of failing attempts
        worker.drain()
        api.clock.advance(hours=1)
    assert not receiver.accepted and all(d.state == "pending" for d in _deliveries(api))
    receiver.start()  # back, on the same port
    _drain_until_quiet(api, worker)
    delivered = _deliveries(api)
    assert len(delivered) == 8 + 4 * 2 and all(d.state == "succeeded" for d in delivered)
    ids = receiver.ids()
    assert sorted(ids) == sorted(d.event_id for d in delivered) and len(ids) == len(set(ids))
    by_job: dict[int, list[int]] = {}
    for r in receiver.accepted:
        by_job.setdefault(r.payload["data"]["job_id"], []).append(r.payload["data"]["event_id"])
    assert all(seq == sorted(seq) for seq in by_job.values())


def test_after_the_retry_window_a_delivery_fails_and_can_be_redelivered(api, worker, receiver, hook_settings):
    _, headers = _outlet(api)
    sub = _subscribe(api, headers, receiver.url)
    tech = api.technician()
    receiver.mode = "fail"
    job = api.job(headers=headers)
    assign(api, job, tech, reason="closer")
    _drain_until_quiet(api, worker, rounds=int(hook_settings.webhook_retry_hours) + 2)
    first, second = _deliveries(api)
    assert first.state == "failed" and second.state == "failed"
    failed = api.get(f"/v1/webhooks/{sub['id']}/deliveries", params={"state": "failed"}, headers=headers).json()
    assert len(failed["items"]) == 2
    receiver.mode = "ok"
    r = api.post(f"/v1/webhooks/{sub['id']}/deliveries/{first.id}/redeliver", headers=headers)
    assert r.status_code == 202 and r.json()["state"] == "pending"
    worker.drain()
    assert [r.payload["data"]["event_id"] for r in receiver.accepted] == [first.event_id]
    assert _deliveries(api)[0].state == "succeeded"


def test_a_410_turns_the_subscription_off_until_it_is_turned_back_on(api, worker, receiver):
    _, headers = _outlet(api)
    sub = _subscribe(api, headers, receiver.url, types=["job.created"])
    receiver.mode = "gone"
    api.job(headers=headers)
    worker.drain()
    got = api.get(f"/v1/webhooks/{sub['id']}", headers=headers).json()
    assert got["active"] is False and "410" in got["disabled_reason"]
    [gone] = _deliveries(api)
    assert gone.state == "failed" and gone.last_status == 410
    api.job(headers=headers)  # while off, nothing is queued for it
    assert len(_deliveries(api)) == 1
    receiver.mode = "ok"
    assert api.patch(f"/v1/webhooks/{sub['id']}", {"active": True}, headers=headers).json()["active"] is True
    api.job(headers=headers)
    api.post(f"/v1/webhooks/{sub['id']}/deliveries/{gone.id}/redeliver", headers=headers)
    worker.drain()
    assert sorted(r.msg_id for r in receiver.accepted) == sorted(f"msg_{d.id}" for d in _deliveries(api))
    assert len(receiver.accepted) == 2


def test_a_throttling_receiver_is_retried_no_sooner_than_it_asked(api, worker, receiver):
    _, headers = _outlet(api)
    _subscribe(api, headers, receiver.url, types=["job.created"])
    receiver.mode = "throttle"
    api.job(headers=headers)
    worker.drain()
    [d] = _deliveries(api)
    assert (d.next_attempt_at - api.clock.now()).total_seconds() >= 600


def test_several_workers_draining_at_once_send_each_delivery_once(api, hook_settings, receiver):
    _, headers = _outlet(api)
    _subscribe(api, headers, receiver.url, types=["job.created"])
    for _ in range(60):
        api.job(headers=headers)
    hook_settings.webhook_batch_size = 7
    hook_settings.webhook_timeout_seconds = 10  # a time-out would be a legitimate second send
    workers = [Worker(database=api.database, settings=hook_settings, clock=api.clock) for _ in range(4)]
    try:
        for _ in range(5):  # a connection the receiver could not take is retried after its backoff
            threads = [threading.Thread(target=w.drain) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            api.clock.advance(hours=1)
    finally:
        for w in workers:
            w.close()
    counts = Counter(r.msg_id for r in receiver.accepted)
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert all(d.state == "succeeded" for d in _deliveries(api))


def test_the_worker_runs_inside_the_server(settings, clock, database, receiver):
    from fastapi.testclient import TestClient

    from dispatch.app import create_app
    from dispatch.auth import service as auth
    from dispatch.auth.models import Role

    settings.webhook_worker = True
    settings.webhook_poll_seconds = 0.05
    settings.webhook_allow_private_urls = True
    with database.transaction() as session:
        _, admin = auth.issue(session=session, role=Role.admin, now=clock.now())
    with TestClient(create_app(settings, clock=clock, database=database)) as client:
        headers = {"Authorization": f"Bearer {admin}"}
        assert (
            client.post(
                "/v1/webhooks", json={"url": receiver.url, "event_types": ["job.created"]}, headers=headers
            ).status_code
            == 201
        )
        assert client.post("/v1/jobs", json=job_body(), headers=headers).status_code == 201
        deadline = time.monotonic() + 10
        while not receiver.accepted and time.monotonic() < deadline:
            time.sleep(0.05)  # the background worker, not a deadline of ours
    assert len(receiver.accepted) == 1


def test_dispatch_worker_once_drains_from_the_command_line(hook_settings, api, receiver, settings, monkeypatch):
    from typer.testing import CliRunner

    from dispatch.cli import app as cli

    _, headers = _outlet(api)
    _subscribe(api, headers, receiver.url, types=["job.created"])
    api.job(headers=headers)
    monkeypatch.setenv("DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("DISPATCH_WEBHOOK_ALLOW_PRIVATE_URLS", "true")
    result = CliRunner().invoke(cli, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert len(receiver.accepted) == 1
    with api.database.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


def test_a_malformed_url_is_a_422_not_a_server_error(api):
    _, headers = _outlet(api)
    for url in ("http://[::1/x", "http://exa mple.com", "http://example.com:99999/x", "http://:80/x"):
        r = api.post("/v1/webhooks", {"url": url, "event_types": ["job.created"]}, headers=headers)
        assert r.status_code == 422, (url, r.text)


def test_the_sla_watchers_at_risk_and_breach_reach_the_outlet_of_the_job_only(api, worker, receiver):
    from dispatch.config import Settings as _Settings
    from dispatch.sla import watcher as sla_watcher

    _, mine = _outlet(api, "shop-1")
    _, other = _outlet(api, "shop-2")
    _subscribe(api, mine, receiver.url, types=("job.at_risk", "job.breached"))
    _subscribe(api, other, receiver.url, types=("job.at_risk", "job.breached"))
    job = api.job(headers=mine)
    api.clock.advance(hours=25)
    assert sla_watcher.run_pass(api.database, api.clock.now, _Settings()).fired == 3
    _drain_until_quiet(api, worker)
    got = [(r.payload["type"], r.payload["data"]["job_id"]) for r in receiver.accepted]
    assert got == [("job.at_risk", job["id"]), ("job.breached", job["id"])]  # the warning has no public type
    assert len(_deliveries(api)) == 2  # none for the other outlet's subscription


# Hostile review (issue 13) ----------------------------------------------------------------


def _poisoned_subscription(api, url: str, types=("job.created",)) -> int:
    """A row as old data would hold it: written straight to the table, past today's checks."""
    with api.database.transaction() as session:
        row = WebhookSubscription(
            url=url,
            event_types=list(types),
            secret=signing.new_secret(),
            created_by="admin:old",
            created_at=api.clock.now(),
            updated_at=api.clock.now(),
        )
        session.add(row)
        session.flush()
        return row.id


def test_a_poisoned_subscription_fails_alone_and_the_healthy_ones_deliveries_are_recorded(api, worker, receiver):
    healthy = _subscribe(api, api.headers("admin"), receiver.url, types=["job.created"])
    poisoned = [_poisoned_subscription(api, url) for url in ("http://0177.0.0.1/x", "http://\U0001f600.example/x")]
    job = api.post("/v1/jobs", job_body()).json()
    assert worker.drain() == 3  # no exception escapes the batch
    [item] = receiver.accepted
    assert item.payload["data"]["job_id"] == job["id"]
    [sent] = _deliveries(api, subscription_id=healthy["id"])
    assert (sent.state, sent.attempts, sent.last_status, sent.leased_by) == ("succeeded", 1, 200, None)
    for subscription_id in poisoned:
        [bad] = _deliveries(api, subscription_id=subscription_id)
        assert (bad.state, bad.attempts, bad.leased_by) == ("pending", 1, None)
        assert bad.last_error.startswith("invalid URL") and bad.next_attempt_at > api.clock.now()
    # An hour on (past every lease): the poisoned ones are tried again, the healthy one is never re-sent.
    api.clock.advance(hours=1)
    assert worker.drain() == 2
    assert len(receiver.seen) == 1
    assert [d.attempts for d in _deliveries(api) if d.subscription_id in poisoned] == [2, 2]
    detail = api.get(f"/v1/webhooks/{poisoned[0]}/deliveries", who="admin").json()["items"][0]
    assert detail["attempts"] == 2 and detail["last_error"].startswith("invalid URL")


def test_a_poisoned_url_is_an_outcome_of_its_own_whether_or_not_private_addresses_are_allowed():
    import httpx

    from dispatch.webhooks import worker as delivery

    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(204)))
    for url in ("http://0177.0.0.1/x", "http://\U0001f600.example/x", "http://[::1/x", "ftp://example.com/x"):
        item = delivery.Claimed(1, 1, url, signing.new_secret(), b"{}")
        for allow_private in (False, True):
            outcome = delivery.send(client, item, now=datetime(2026, 3, 10, tzinfo=UTC), allow_private=allow_private)
            assert outcome.status is None and outcome.error.startswith("invalid URL"), (url, outcome)


def test_urls_the_http_client_cannot_parse_are_refused_when_subscribing(api, hook_settings):
    _, headers = _outlet(api)
    for url in ("http://0177.0.0.1/x", "http://\U0001f600.example/x", "https://xn--ls8h.example/x"):
        r = api.post("/v1/webhooks", {"url": url, "event_types": ["job.created"]}, headers=headers)
        assert r.status_code == 422, (url, r.text)  # even where private addresses are allowed
    assert (
        api.post(
            "/v1/webhooks", {"url": "https://b\u00fccher.example/x", "event_types": ["job.created"]}, headers=headers
        ).status_code
        == 201
    )


def test_other_spellings_of_internal_addresses_and_multicast_are_refused(api):
    _, headers = _outlet(api)
    for url in (
        "http://2130706433/x",  # 127.0.0.1 as one number, as the system resolver reads it
        "http://127.1/x",
        "http://0x7f.0.0.1/x",
        "http://224.0.0.251/x",  # multicast
        "http://239.255.255.250:1900/x",
        "http://[ff02::1]/x",
        "http://[::ffff:224.0.0.1]/x",
    ):
        r = api.post("/v1/webhooks", {"url": url, "event_types": ["job.created"]}, headers=headers)
        assert r.status_code == 422 and r.json()["code"] == "webhook-url-not-allowed", (url, r.text)


def test_a_deliverys_last_error_does_not_say_whether_an_internal_name_resolves(monkeypatch):
    import socket

    import httpx

    from dispatch.webhooks import worker as delivery

    def internal_dns(host, port, *args, **kwargs):
        if host == "db.internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", internal_dns)
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(204)))
    errors = {
        host: delivery.send(
            client,
            delivery.Claimed(1, 1, f"https://{host}/hook", signing.new_secret(), b"{}"),
            now=datetime(2026, 3, 10, tzinfo=UTC),
            allow_private=False,
        ).error
        for host in ("db.internal.example", "nothing.internal.example")
    }
    assert errors == {h: "refused: not a public address" for h in errors}


def test_an_attempt_by_a_worker_whose_lease_ran_out_is_still_counted(api, hook_settings, receiver):
    """Worker A claims and sends but is slow to record; its lease runs out and B sends again.
    Both attempts were made: the delivery counts two, as its attempt list shows."""
    import httpx

    from dispatch.webhooks import worker as delivery

    _, headers = _outlet(api)
    sub = _subscribe(api, headers, receiver.url, types=["job.created"])
    api.post("/v1/jobs", job_body(), headers=headers)
    lease = timedelta(seconds=hook_settings.webhook_lease_seconds)
    with httpx.Client() as client:

        def attempt(worker_id):
            [item] = delivery.claim(
                database=api.database, now=api.clock.now(), worker_id=worker_id, limit=10, lease=lease
            )
            return delivery.send(client, item, now=api.clock.now(), allow_private=True)

        late = attempt("A")
        api.clock.advance(lease + timedelta(seconds=1))
        on_time = attempt("B")
        for worker_id, outcome in (("B", on_time), ("A", late)):
            delivery.record(
                database=api.database,
                outcomes=[outcome],
                worker_id=worker_id,
                now=api.clock.now(),
                settings=hook_settings,
            )
    [d] = _deliveries(api)
    detail = api.get(f"/v1/webhooks/{sub['id']}/deliveries/{d.id}", headers=headers).json()
    assert (detail["state"], detail["attempts"], len(detail["attempts_made"])) == ("succeeded", 2, 2)
    assert len(receiver.accepted) == 2
