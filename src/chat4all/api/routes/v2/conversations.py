"""/v2/conversations: the inbox, summaries, group management, history both ways, read cursors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from chat4all.api.deps import CurrentUser
from chat4all.api.errors import responses
from chat4all.api.routes.v2.deps import V2
from chat4all.api.schemas_v2 import (
    AddMembers,
    ConversationSummary,
    CreateConversationV2,
    Inbox,
    ReadCursorOut,
    ReadUpTo,
    SetRole,
    Timeline,
    UpdateConversation,
)
from chat4all.domain.ids import MAX_INT64
from chat4all.domain.models import ConversationType
from chat4all.domain.views import v2_message
from chat4all.services.groups import UNSET

router = APIRouter(prefix="/v2/conversations", tags=["v2 conversations"])

@router.get("", response_model=Inbox, responses=responses(401, 422), operation_id="listConversationsV2")
async def inbox(
    user: CurrentUser,
    v2: V2,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")] = None,
    since: Annotated[
        str | None, Query(max_length=512, description="a `sync_token`: only the conversations changed since")
    ] = None,
) -> Any:
    """Your conversations by last activity, newest first, each with its last message, your unread
    count and read cursor. With `since`, only those that changed (one you left appears once,
    with `membership: "left"`)."""
    page = await v2.inbox.inbox(user, limit=limit, cursor=cursor, since=since)
    return {"items": page.items, "next_cursor": page.next_cursor, "sync_token": page.sync_token}


@router.post(
    "", status_code=201, response_model=ConversationSummary, responses=responses(400, 401, 422, 429),
    operation_id="createConversationV2",
)
async def create(body: CreateConversationV2, user: CurrentUser, v2: V2) -> Any:
    """As v1 (a private conversation again for the same pair returns the existing one), with a
    topic; the creator of a group is its owner."""
    return await v2.groups.create(
        creator=user, type=ConversationType(body.type), members=body.members, name=body.name,
        metadata=body.metadata, topic=body.topic,
    )


@router.get(
    "/{conversation_id:id}", response_model=ConversationSummary, responses=responses(401, 404),
    operation_id="getConversationV2",
)
async def get(conversation_id: str, user: CurrentUser, v2: V2) -> Any:
    return await v2.inbox.summary(conversation_id, viewer=user)


@router.patch(
    "/{conversation_id:id}", response_model=ConversationSummary, responses=responses(400, 401, 403, 404, 422),
    operation_id="updateConversationV2",
)
async def update(conversation_id: str, body: UpdateConversation, user: CurrentUser, v2: V2) -> Any:
    """Renames the group or sets its topic (owner or admin); each change is a system message."""
    fields = body.model_fields_set
    return await v2.groups.update(
        conversation_id,
        actor=user,
        name=body.name if "name" in fields else UNSET,
        topic=body.topic if "topic" in fields else UNSET,
    )


@router.post(
    "/{conversation_id:id}/members", response_model=ConversationSummary, responses=responses(400, 401, 403, 404, 422),
    operation_id="addMembersV2",
)
async def add_members(conversation_id: str, body: AddMembers, user: CurrentUser, v2: V2) -> Any:
    """Adds members (owner or admin); those already members are ignored."""
    return await v2.groups.add_members(conversation_id, actor=user, usernames=body.usernames)


UsernamePath = Annotated[str, Path(max_length=64, description="a member's username", examples=["bob"])]


@router.delete(
    "/{conversation_id:id}/members/{username}", status_code=204, responses=responses(401, 403, 404, 422),
    operation_id="removeMemberV2",
)
async def remove_member(conversation_id: str, username: UsernamePath, user: CurrentUser, v2: V2) -> Response:
    """The owner removes anyone, an admin removes members; removing yourself is leaving."""
    await v2.groups.remove_member(conversation_id, actor=user, username=username)
    return Response(status_code=204)


@router.post(
    "/{conversation_id:id}/leave", status_code=204, responses=responses(401, 404, 422),
    operation_id="leaveConversationV2",
)
async def leave(conversation_id: str, user: CurrentUser, v2: V2) -> Response:
    """An owner who leaves passes ownership to the earliest admin, else the earliest member."""
    await v2.groups.leave(conversation_id, actor=user)
    return Response(status_code=204)


@router.put(
    "/{conversation_id:id}/members/{username}/role", response_model=ConversationSummary,
    responses=responses(400, 401, 403, 404, 422), operation_id="setMemberRoleV2",
)
async def set_role(conversation_id: str, username: UsernamePath, body: SetRole, user: CurrentUser, v2: V2) -> Any:
    """Owner only; giving `owner` makes you an admin."""
    return await v2.groups.set_role(conversation_id, actor=user, username=username, role=body.role)


@router.get(
    "/{conversation_id:id}/messages", response_model=Timeline, responses=responses(401, 404, 422),
    operation_id="conversationMessagesV2",
)
async def messages(
    conversation_id: str,
    user: CurrentUser,
    v2: V2,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=0, le=MAX_INT64, description="messages with sequence_number < before")] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_INT64, description="messages with sequence_number > after")] = None,
    around: Annotated[
        str | None, Query(max_length=64, description="a message_id: the message with half the page before it and half after")
    ] = None,
) -> Any:
    """The latest `limit` messages, or the page before/after a sequence number, or around a
    message; ascending. Edits show their current version, deletes a tombstone."""
    page = await v2.timeline.page(
        conversation_id, viewer=user, limit=limit, before=before, after=after, around=around
    )
    return {"items": [v2_message(m) for m in page.items], "prev_cursor": page.prev_cursor, "next_cursor": page.next_cursor}


@router.post(
    "/{conversation_id:id}/read", response_model=ReadCursorOut, responses=responses(400, 401, 404, 422),
    operation_id="markReadV2",
)
async def read(conversation_id: str, body: ReadUpTo, user: CurrentUser, v2: V2) -> Any:
    """Marks everything up to `up_to_sequence` READ for you (a status event and webhook per
    message, as v1's READ); forward only: a lower value answers the current cursor."""
    return await v2.inbox.read(conversation_id, viewer=user, up_to=body.up_to_sequence)

