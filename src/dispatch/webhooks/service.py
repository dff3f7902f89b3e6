"""Webhook subscriptions and their deliveries: plain functions over a session."""

from __future__ import annotations

import ipaddress
import socket
from datetime import datetime

import httpx
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.errors import NotFound, Unprocessable
from dispatch.outlets import service as outlets
from dispatch.paging import Cut, Keyset
from dispatch.schemas import Id
from dispatch.webhooks import signing
from dispatch.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from dispatch.webhooks.schemas import WebhookCreate, WebhookUpdate

# What a delivery's last_error says when its destination is not on the public internet: the same
# words whether the name resolved inside or not at all, so subscribers cannot map our network.
NOT_PUBLIC = "refused: not a public address"


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that point inside our own network (SSRF), unless allowed for development.

    The URL is read as the worker's HTTP client reads it, and its host as the worker's resolver
    reads it without asking DNS: literal addresses in any spelling the system accepts
    (``2130706433``, ``127.1``, ``0x7f.0.0.1``) and ``localhost`` are refused here; names are
    resolved and checked again by the worker before every send, since DNS can change after
    subscribing."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise _bad_url("the URL cannot be parsed") from None
    host = parsed.host.lower()
    if not host:
        raise _bad_url("the URL has no host")
    if allow_private:
        return
    if host == "localhost" or host.endswith(".localhost") or is_private_host(host):
        raise _bad_url("the URL points at a loopback or private address")
    try:
        literal = addresses(parsed, numeric_only=True)
    except (OSError, UnicodeError):
        return  # a name, not an address: the worker resolves and checks it before each send
    if not literal or any(is_private_host(a) for a in literal):
        raise _bad_url("the URL points at a loopback or private address")


def addresses(url: httpx.URL, *, numeric_only: bool = False) -> list[str]:
    """The addresses the URL's host stands for, as the system resolver reads it (the worker
    connects to one of these). ``numeric_only`` reads literal addresses without asking DNS.
    Raises ``OSError`` (or ``UnicodeError``) when there are none."""
    port = url.port or (443 if url.scheme == "https" else 80)
    flags = socket.AI_NUMERICHOST if numeric_only else 0
    infos = socket.getaddrinfo(url.raw_host.decode("ascii"), port, type=socket.SOCK_STREAM, flags=flags)
    return [str(info[4][0]) for info in infos]


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv4 behind a NAT64 gateway, the address in the low 32 bits


def is_private_host(host: str) -> bool:
    """A literal address that is not a public unicast one, including an IPv4 one wrapped in IPv6
    (mapped, 6to4, Teredo, NAT64): Python counts some of those wrappers, and multicast, as global."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        wrapped = [address.ipv4_mapped, address.sixtofour, address.teredo[1] if address.teredo else None]
        if address in _NAT64:
            wrapped.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(inner is not None and (not inner.is_global or inner.is_multicast) for inner in wrapped):
            return True
    return not address.is_global or address.is_multicast


def _bad_url(why: str) -> Unprocessable:
    return Unprocessable(
        why,
        code="webhook-url-not-allowed",
        errors=[{"loc": ["body", "url"], "msg": why, "type": "value_error"}],
    )


def visible(caller: Caller) -> Select[WebhookSubscription]:
    stmt = select(WebhookSubscription)
    if caller.role is Role.outlet:
        stmt = stmt.where(WebhookSubscription.outlet_id == caller.outlet_id)
    return stmt


def get(*, session: Session, subscription_id: int, caller: Caller) -> WebhookSubscription:
    subscription = session.scalar(visible(caller).where(WebhookSubscription.id == subscription_id))
    if subscription is None:
        raise NotFound(f"webhook {subscription_id} not found", code="webhook-not-found")
    return subscription


def create(
    *, session: Session, webhook_in: WebhookCreate, caller: Caller, now: datetime, allow_private: bool
) -> WebhookSubscription:
    check_url(webhook_in.url, allow_private=allow_private)
    if caller.role is Role.outlet:
        if webhook_in.outlet_id not in (None, caller.outlet_id):
            raise NotFound(f"outlet {webhook_in.outlet_id} not found", code="outlet-not-found")
        outlet_id = caller.outlet_id
    else:
        outlet_id = webhook_in.outlet_id
        if outlet_id is not None:
            outlets.get(session=session, outlet_id=outlet_id)
    subscription = WebhookSubscription(
        outlet_id=outlet_id,
        url=webhook_in.url,
        event_types=sorted(set(webhook_in.event_types)),
        description=webhook_in.description,
        secret=signing.new_secret(),
        active=True,
        created_by=caller.actor,
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    session.flush()
    return subscription


def update(
    *,
    session: Session,
    subscription_id: int,
    changes: WebhookUpdate,
    caller: Caller,
    now: datetime,
    allow_private: bool,
) -> WebhookSubscription:
    subscription = get(session=session, subscription_id=subscription_id, caller=caller)
    if changes.url is not None:
        check_url(changes.url, allow_private=allow_private)
        subscription.url = changes.url
    if changes.event_types is not None:
        subscription.event_types = sorted(set(changes.event_types))
    if changes.description is not None:
        subscription.description = changes.description
    if changes.active is not None:
        subscription.active = changes.active
        subscription.disabled_reason = None if changes.active else f"turned off by {caller.actor}"
    subscription.updated_at = now
    session.flush()
    return subscription


def delete(*, session: Session, subscription_id: int, caller: Caller) -> None:
    subscription = get(session=session, subscription_id=subscription_id, caller=caller)
    session.delete(subscription)
    session.flush()


SUBSCRIPTIONS: Keyset[WebhookSubscription] = Keyset("webhooks", Id)
DELIVERIES: Keyset[WebhookDelivery] = Keyset("webhook-deliveries", Id)


def list_subscriptions(*, session: Session, caller: Caller, limit: int, cursor: str | None) -> Cut[WebhookSubscription]:
    return SUBSCRIPTIONS.fetch(session, visible(caller), WebhookSubscription.id, cursor=cursor, limit=limit)


def list_deliveries(
    *,
    session: Session,
    subscription_id: int,
    caller: Caller,
    limit: int,
    cursor: str | None,
    state: DeliveryState | None = None,
    job_id: int | None = None,
) -> Cut[WebhookDelivery]:
    get(session=session, subscription_id=subscription_id, caller=caller)
    stmt = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if state is not None:
        stmt = stmt.where(WebhookDelivery.state == state)
    if job_id is not None:
        stmt = stmt.where(WebhookDelivery.job_id == job_id)
    return DELIVERIES.fetch(session, stmt, WebhookDelivery.id, cursor=cursor, limit=limit)


def get_delivery(
    *, session: Session, subscription_id: int, delivery_id: int, caller: Caller, for_update: bool = False
) -> WebhookDelivery:
    get(session=session, subscription_id=subscription_id, caller=caller)
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == subscription_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    delivery = session.scalar(stmt)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found", code="delivery-not-found")
    return delivery


def attempts(*, session: Session, delivery_id: int, limit: int = 100) -> list[WebhookAttempt]:
    return list(
        session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.id.desc())
            .limit(limit)
        )
    )


def delivery_with_attempts(
    *, session: Session, subscription_id: int, delivery_id: int, caller: Caller
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    """A delivery the caller may see, with its latest attempts (newest first)."""
    delivery = get_delivery(session=session, subscription_id=subscription_id, delivery_id=delivery_id, caller=caller)
    return delivery, attempts(session=session, delivery_id=delivery_id)


def redeliver(
    *, session: Session, subscription_id: int, delivery_id: int, caller: Caller, now: datetime
) -> WebhookDelivery:
    """Send it again, now, with a fresh retry window. A delivered one is sent once more too
    (receivers deduplicate on ``webhook-id``, which stays the same)."""
    delivery = get_delivery(
        session=session, subscription_id=subscription_id, delivery_id=delivery_id, caller=caller, for_update=True
    )
    delivery.state = DeliveryState.pending
    delivery.next_attempt_at = now
    delivery.retry_from = now
    delivery.leased_until = None
    delivery.leased_by = None
    delivery.delivered_at = None
    session.flush()
    return delivery
