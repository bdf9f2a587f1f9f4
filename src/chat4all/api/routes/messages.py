"""Sending messages, reading them and their status, and receipts over HTTP."""

from __future__ import annotations

from fastapi import APIRouter, Header, Response

from chat4all.api.deps import CurrentUser, ServicesDep
from chat4all.api.errors import responses
from chat4all.api.responses import JSON
from chat4all.api.schemas import (
    HistoryEntry,
    MessageAccepted,
    MessageOut,
    MessageStatusOut,
    Receipt,
    RecipientStatus,
    SendMessage,
)
from chat4all.domain.errors import InvalidInput
from chat4all.domain.frames import message_view
from chat4all.domain.ids import parse_uuid
from chat4all.domain.models import INTERNAL
from chat4all.domain.status import DeliveryStatus
from chat4all.services.bundle import Services
from chat4all.services.messages import Accepted

router = APIRouter(prefix="/v1/messages", tags=["messages"])


@router.post(
    "",
    status_code=202,
    response_model=MessageAccepted,
    response_model_exclude_none=True,
    responses={
        200: {"model": MessageAccepted, "description": "A duplicate message_id: the original's current status"},
        **responses(400, 401, 403, 404, 409, 413, 422, 503),
    },
)
async def send(
    body: SendMessage,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        max_length=64,
        description="The message_id (UUID): the message_id of a body without one, else equal to it. "
        "A request that carries it may be repeated (the gateway retries it on another node).",
    ),
) -> JSON:
    """Accepts a message (202) once it is durably on the log; delivery happens after."""
    return accepted_response(await accept(body, user, services, message_id_of(body, idempotency_key)))


def message_id_of(body: SendMessage, key: str | None) -> str | None:
    """The send's message_id: an ``Idempotency-Key`` header is it, so that a repeat of the
    request is a duplicate, never a second message, whatever the body says or omits."""
    if key is None:
        return body.message_id
    if body.message_id is None:
        return key
    if not _same_id(body.message_id, key):
        raise InvalidInput("the Idempotency-Key header and the message_id differ", details={"idempotency_key": key})
    return body.message_id


def _same_id(a: str, b: str) -> bool:
    try:
        return parse_uuid(a) == parse_uuid(b)
    except ValueError:
        return a == b


async def accept(body: SendMessage, user: str, services: Services, message_id: str | None) -> Accepted:
    """``message_id``: ``message_id_of(body, the Idempotency-Key header)``."""
    return await services.messages.accept(
        caller=user,
        conversation_id=body.conversation_id,
        message_id=message_id,
        sender=body.from_,
        recipients=body.to,
        channels=body.channels,
        payload=body.payload.model_dump(exclude_none=True),
        metadata=body.metadata,
    )


def accepted_answer(accepted: Accepted) -> tuple[dict[str, object], int]:
    """The body and status of an accepted send (202), or of a repeat of one (200)."""
    content: dict[str, object] = {
        "message_id": accepted.message_id,
        "conversation_id": accepted.conversation_id,
        "status": accepted.status,
    }
    if accepted.duplicate:
        content["duplicate"] = True
    return content, 200 if accepted.duplicate else 202


def accepted_response(accepted: Accepted) -> JSON:
    content, status = accepted_answer(accepted)
    return JSON(content, status_code=status)


@router.post("/ack", status_code=204, responses=responses(400, 401, 422))
async def ack(body: Receipt, user: CurrentUser, services: ServicesDep) -> Response:
    """Marks messages you received as delivered or read (the HTTP twin of the WebSocket frames)."""
    status = DeliveryStatus.DELIVERED if body.status == "delivered" else DeliveryStatus.READ
    await services.deliveries.record(
        username=user, channel=INTERNAL, message_ids=body.message_ids, status=status
    )
    return Response(status_code=204)


@router.get("/{message_id:id}", response_model=MessageOut, responses=responses(401, 404))
async def get(message_id: str, user: CurrentUser, services: ServicesDep) -> MessageOut:
    return MessageOut.model_validate(message_view(await services.messages.get(message_id, viewer=user)))


@router.get("/{message_id:id}/status", response_model=MessageStatusOut, responses=responses(401, 404))
async def status(message_id: str, user: CurrentUser, services: ServicesDep) -> MessageStatusOut:
    """The message's status (the least advanced of its deliveries), each recipient × channel, and
    the full history. Only the sender sees it."""
    s = await services.messages.status(message_id, viewer=user)
    return MessageStatusOut(
        message_id=s.message_id,
        status=s.status.value,
        recipients=[
            RecipientStatus(
                username=d.username, channel=d.channel, status=d.status.value, updated_at=d.updated_at, error=d.error
            )
            for d in s.deliveries
        ],
        history=[
            HistoryEntry(status=h.status.value, at=h.at, username=h.username, channel=h.channel, detail=h.detail)
            for h in s.history
        ],
    )
