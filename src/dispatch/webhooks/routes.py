from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from dispatch.auth.dependencies import allow
from dispatch.auth.models import Role
from dispatch.auth.service import Caller
from dispatch.deps import (
    IdPath,
    IdQuery,
    NowDep,
    SettingsDep,
    UnitOfWorkDep,
)
from dispatch.errors import problem_responses
from dispatch.paging import CursorQuery, LimitQuery, Page
from dispatch.webhooks import service
from dispatch.webhooks.models import DeliveryState
from dispatch.webhooks.schemas import (
    AttemptPublic,
    DeliveryDetail,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhookUpdate,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=problem_responses(400, 401, 403, 413, 422))
Subscriber = Annotated[Caller, Depends(allow(Role.outlet))]


@router.post("", status_code=201, response_model=WebhookCreated, responses=problem_responses(404))
async def create_webhook(
    body: WebhookCreate, response: Response, uow: UnitOfWorkDep, settings: SettingsDep, now: NowDep, caller: Subscriber
) -> WebhookCreated:
    """Subscribe a URL to job events. The answer carries the signing secret, once. Deliveries
    are signed (Standard Webhooks), retried with backoff, and in order per job."""

    def work(session: Session) -> WebhookCreated:
        subscription = service.create(
            session=session, webhook_in=body, caller=caller, now=now, allow_private=settings.webhook_allow_private_urls
        )
        return WebhookCreated.model_validate(
            {**WebhookPublic.model_validate(subscription).model_dump(), "secret": subscription.secret}
        )

    created = await uow.run(work)
    response.headers["Location"] = f"/v1/webhooks/{created.id}"
    return created


@router.get("", response_model=Page[WebhookPublic])
async def list_webhooks(
    uow: UnitOfWorkDep, caller: Subscriber, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[WebhookPublic]:
    return await uow.run(
        lambda session: service.list_subscriptions(session=session, caller=caller, limit=limit, cursor=cursor).page(
            WebhookPublic
        )
    )


@router.get("/{subscription_id}", response_model=WebhookPublic, responses=problem_responses(404))
async def get_webhook(subscription_id: IdPath, uow: UnitOfWorkDep, caller: Subscriber) -> WebhookPublic:
    return await uow.run(
        lambda session: WebhookPublic.model_validate(
            service.get(session=session, subscription_id=subscription_id, caller=caller)
        )
    )


@router.patch("/{subscription_id}", response_model=WebhookPublic, responses=problem_responses(404))
async def update_webhook(
    subscription_id: IdPath,
    body: WebhookUpdate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    now: NowDep,
    caller: Subscriber,
) -> WebhookPublic:
    """Change the URL or event types, or turn a subscription off and on (`active`). While it is
    off no deliveries are queued for it; ones already queued wait and are sent once it is on."""
    return await uow.run(
        lambda session: WebhookPublic.model_validate(
            service.update(
                session=session,
                subscription_id=subscription_id,
                changes=body,
                caller=caller,
                now=now,
                allow_private=settings.webhook_allow_private_urls,
            )
        )
    )


@router.delete("/{subscription_id}", status_code=204, responses=problem_responses(404))
async def delete_webhook(subscription_id: IdPath, uow: UnitOfWorkDep, caller: Subscriber) -> Response:
    """Unsubscribe; its pending deliveries are dropped."""
    await uow.run(lambda session: service.delete(session=session, subscription_id=subscription_id, caller=caller))
    return Response(status_code=204)


@router.get("/{subscription_id}/deliveries", response_model=Page[DeliveryPublic], responses=problem_responses(404))
async def list_webhook_deliveries(
    subscription_id: IdPath,
    uow: UnitOfWorkDep,
    caller: Subscriber,
    state: Annotated[DeliveryState | None, Query()] = None,
    job_id: IdQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryPublic]:
    """Deliveries of this subscription, oldest first; filter by `state` (e.g. `failed`) or job."""
    return await uow.run(
        lambda session: service.list_deliveries(
            session=session,
            subscription_id=subscription_id,
            caller=caller,
            limit=limit,
            cursor=cursor,
            state=state,
            job_id=job_id,
        ).page(DeliveryPublic)
    )


@router.get(
    "/{subscription_id}/deliveries/{delivery_id}", response_model=DeliveryDetail, responses=problem_responses(404)
)
async def get_webhook_delivery(
    subscription_id: IdPath, delivery_id: IdPath, uow: UnitOfWorkDep, caller: Subscriber
) -> DeliveryDetail:
    """A delivery with its attempts: when, what the receiver answered, how long it took."""

    def work(session: Session) -> DeliveryDetail:
        delivery, attempts = service.delivery_with_attempts(
            session=session, subscription_id=subscription_id, delivery_id=delivery_id, caller=caller
        )
        return DeliveryDetail.model_validate(
            {
                **DeliveryPublic.model_validate(delivery).model_dump(),
                "attempts_made": [AttemptPublic.model_validate(a) for a in attempts],
            }
        )

    return await uow.run(work)


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryPublic,
    responses=problem_responses(404),
)
async def redeliver_webhook_delivery(
    subscription_id: IdPath, delivery_id: IdPath, uow: UnitOfWorkDep, now: NowDep, caller: Subscriber
) -> DeliveryPublic:
    """Queue a delivery again (a failed one, or one the receiver lost), with a fresh retry window."""
    return await uow.run(
        lambda session: DeliveryPublic.model_validate(
            service.redeliver(
                session=session,
                subscription_id=subscription_id,
                delivery_id=delivery_id,
                caller=caller,
                now=now,
            )
        )
    )
