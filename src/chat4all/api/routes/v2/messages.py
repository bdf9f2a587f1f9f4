"""/v2/messages: send (v1's), read, edit, delete, versions, status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Response

from chat4all.api.deps import CurrentUser, ServicesDep
from chat4all.api.errors import responses
from chat4all.api.responses import JSON
from chat4all.api.routes import messages as v1
from chat4all.api.routes.v2.deps import V2
from chat4all.api.schemas import MessageAccepted, MessageStatusOut, SendMessage
from chat4all.api.schemas_v2 import EditMessage, MessageVersions, V2Message
from chat4all.domain.views import v2_message

router = APIRouter(prefix="/v2/messages", tags=["v2 messages"])


@router.post(
    "",
    status_code=202,
    response_model=MessageAccepted,
    response_model_exclude_none=True,
    responses={
        200: {"model": MessageAccepted, "description": "A duplicate message_id: the original's current status"},
        **responses(400, 401, 403, 404, 409, 413, 422, 503),
    },
    operation_id="sendMessageV2",
)
async def send(
    body: SendMessage,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", max_length=64, description="As on POST /v1/messages: the message_id (UUID)."
    ),
) -> JSON:
    """v1's send: same body, same answers (202 accepted, 200 for a duplicate message_id)."""
    return v1.accepted_response(await v1.accept(body, user, services, v1.message_id_of(body, idempotency_key)))


@router.get("/{message_id:id}", response_model=V2Message, responses=responses(401, 404), operation_id="getMessageV2")
async def get(message_id: str, user: CurrentUser, v2: V2) -> Any:
    return v2_message(await v2.timeline.get(message_id, viewer=user))


@router.patch(
    "/{message_id:id}", response_model=V2Message, responses=responses(400, 401, 403, 404, 409, 413, 422),
    operation_id="editMessageV2",
)
async def edit(message_id: str, body: EditMessage, user: CurrentUser, v2: V2) -> Any:
    """The sender edits the text or the metadata; every version is kept."""
    payload = body.payload.model_dump() if body.payload is not None else None
    return v2_message(await v2.timeline.edit(message_id, viewer=user, payload=payload, metadata=body.metadata))


@router.delete(
    "/{message_id:id}", status_code=204, responses=responses(401, 403, 404), operation_id="deleteMessageV2"
)
async def delete(message_id: str, user: CurrentUser, v2: V2) -> Response:
    """The sender, or an owner or admin of the group, deletes it: a tombstone keeps its place."""
    await v2.timeline.delete(message_id, viewer=user)
    return Response(status_code=204)


@router.get(
    "/{message_id:id}/versions", response_model=MessageVersions, responses=responses(401, 404),
    operation_id="messageVersionsV2",
)
async def versions(message_id: str, user: CurrentUser, v2: V2) -> Any:
    found = await v2.timeline.versions(message_id, viewer=user)
    return {"items": [{"version": v.version, "payload": v.payload, "metadata": v.metadata, "at": v.at} for v in found]}


@router.get(
    "/{message_id:id}/status", response_model=MessageStatusOut, responses=responses(401, 404),
    operation_id="messageStatusV2",
)
async def status(message_id: str, user: CurrentUser, services: ServicesDep) -> MessageStatusOut:
    """As v1: only the sender sees it."""
    return await v1.status(message_id, user, services)
