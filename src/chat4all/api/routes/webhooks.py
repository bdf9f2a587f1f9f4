"""Webhooks (R6.5, R8.5): register a URL for your events, list, delete, see every attempt."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response

from chat4all.api.deps import CurrentUser, ServicesDep
from chat4all.api.errors import responses
from chat4all.api.schemas import (
    CreateWebhook,
    WebhookAttemptOut,
    WebhookCreated,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookList,
    WebhookOut,
)
from chat4all.domain.webhooks import CallbackDelivery, Webhook

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _out(w: Webhook) -> dict[str, object]:
    return {
        "webhook_id": w.webhook_id,
        "url": w.url,
        "events": list(w.events),
        "created_at": w.created_at,
        "status": "active" if w.active else "disabled",
        "disabled_at": w.disabled_at,
        "disabled_reason": w.disabled_reason,
    }


def _delivery(d: CallbackDelivery) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        event_id=d.event_id,
        type=d.type,
        state=d.state.value,
        created_at=d.created_at,
        next_attempt_at=d.next_attempt_at,
        finished_at=d.finished_at,
        last_error=d.last_error,
        payload=orjson.loads(d.body),
        attempts=[
            WebhookAttemptOut(
                attempt=a.attempt, at=a.at, status_code=a.status_code, latency_ms=a.latency_ms, error=a.error
            )
            for a in d.attempts
        ],
    )


@router.post("", status_code=201, response_model=WebhookCreated, responses=responses(400, 401, 422))
async def create(body: CreateWebhook, user: CurrentUser, services: ServicesDep) -> WebhookCreated:
    """Registers a URL that receives a signed POST for every status change of your messages (and
    your files' completion). The `secret` that signs them is shown only in this answer. URLs that
    resolve to private, loopback, link-local or metadata addresses are refused (`url_not_allowed`)."""
    webhook = await services.webhooks.register(user, url=body.url, events=body.events)
    return WebhookCreated(**_out(webhook), secret=webhook.secret)


@router.get("", response_model=WebhookList, responses=responses(401))
async def list_mine(user: CurrentUser, services: ServicesDep) -> WebhookList:
    """Your webhooks; a webhook disabled after too many failed callbacks says so, and why."""
    return WebhookList(items=[WebhookOut(**_out(w)) for w in await services.webhooks.list_for(user)])


@router.delete("/{webhook_id:id}", status_code=204, responses=responses(401, 404))
async def delete(webhook_id: str, user: CurrentUser, services: ServicesDep) -> Response:
    """Deletes the webhook: nothing more is sent to it, pending callbacks included."""
    await services.webhooks.delete(user, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id:id}/deliveries", response_model=WebhookDeliveryList, responses=responses(401, 404, 422))
async def deliveries(
    webhook_id: str,
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page")
    ] = None,
) -> WebhookDeliveryList:
    """The callbacks sent (or to be sent) to this webhook, newest first, each with every attempt:
    status code, latency and error."""
    page = await services.webhooks.deliveries(user, webhook_id, limit=limit, cursor=cursor)
    return WebhookDeliveryList(items=[_delivery(d) for d in page.items], next_cursor=page.next_cursor)
