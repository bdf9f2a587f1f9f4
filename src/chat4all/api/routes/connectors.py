"""Inbound calls from channel providers: receipts, and people writing back (R9.1, R14.3)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from chat4all.api.deps import ServicesDep
from chat4all.api.errors import responses
from chat4all.api.responses import JSON
from chat4all.api.schemas import ConnectorWebhookAnswer
from chat4all.domain.errors import Unavailable

router = APIRouter(prefix="/v1/connectors", tags=["connectors"])


@router.post(
    "/{channel}/webhook",
    response_model=ConnectorWebhookAnswer,
    responses=responses(400, 401, 403, 404, 413, 422, 503),
    # the body is the provider's own format (a Telegram Update, ...), read by the channel's connector
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def webhook(channel: str, request: Request, services: ServicesDep) -> JSON:
    """Called by the channel's provider, authenticated the provider's way (Telegram: the
    `X-Telegram-Bot-Api-Secret-Token` header). Receipts move the delivery's status; a message
    posts into the conversation of the bridged message it answers."""
    if services.inbound is None:
        raise Unavailable("this process does not take calls from channel providers")
    outcome = await services.inbound.handle(
        channel, headers=dict(request.headers), body=await request.body(), query=dict(request.query_params)
    )
    return JSON({"ok": True, "accepted": outcome.accepted, "ignored": outcome.ignored})
