"""Conversations (R3) and their message history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chat4all.api.deps import CurrentUser, ServicesDep
from chat4all.api.errors import responses
from chat4all.api.schemas import ConversationList, ConversationOut, CreateConversation, MessageList, MessageOut
from chat4all.domain.frames import message_view
from chat4all.domain.ids import MAX_INT64
from chat4all.domain.models import Conversation, ConversationType

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


def _out(c: Conversation) -> ConversationOut:
    return ConversationOut(
        conversation_id=c.conversation_id,
        type=c.type.value,
        name=c.name,
        members=list(c.members),
        created_by=c.created_by,
        created_at=c.created_at,
        metadata=c.metadata,
    )


@router.post("", status_code=201, response_model=ConversationOut, responses=responses(400, 401, 422))
async def create(body: CreateConversation, user: CurrentUser, services: ServicesDep) -> ConversationOut:
    """Creates a private (2 members) or group conversation; you are always a member.
    Creating a private conversation again for the same pair returns the existing one."""
    conversation = await services.conversations.create(
        creator=user, type=ConversationType(body.type), members=body.members, name=body.name, metadata=body.metadata
    )
    return _out(conversation)


@router.get("", response_model=ConversationList, responses=responses(401, 422))
async def list_mine(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ConversationList:
    page = await services.conversations.list(user, limit=limit, cursor=cursor)
    return ConversationList(items=[_out(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/{conversation_id:id}", response_model=ConversationOut, responses=responses(401, 404))
async def get(conversation_id: str, user: CurrentUser, services: ServicesDep) -> ConversationOut:
    return _out(await services.conversations.get(conversation_id, viewer=user))


@router.get("/{conversation_id:id}/messages", response_model=MessageList, responses=responses(401, 404, 422))
async def messages(
    conversation_id: str,
    user: CurrentUser,
    services: ServicesDep,
    since: Annotated[
        int, Query(ge=0, le=MAX_INT64, description="return messages with sequence_number > since")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MessageList:
    page = await services.messages.history(conversation_id, viewer=user, since=since, limit=limit)
    return MessageList(
        items=[MessageOut.model_validate(message_view(m)) for m in page.items], next_since=page.next_since
    )
