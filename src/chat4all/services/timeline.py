"""A conversation's timeline as API v2 reads it: pages both ways from any point, a message with
its context, edits (every version kept) and deletes (tombstones that keep the sequence number).

What a user sees is what was addressed to them or sent by them: a member who left or was
removed keeps the history up to their removal (the removal's system message is their last),
and nothing after it, because nothing after it is addressed to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from chat4all.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from chat4all.domain.ids import parse_uuid, utcnow
from chat4all.domain.models import Message
from chat4all.ports import MessageVersion, TimelineStore
from chat4all.services.conversations import ConversationService
from chat4all.services.messages import MAX_METADATA_KEYS, MessageService
from chat4all.services.notices import Notices

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class TimelinePage:
    items: list[Message]
    prev_cursor: int | None  # the ``before`` of the older page
    next_cursor: int | None  # the ``after`` of the newer page


class TimelineService:
    def __init__(
        self,
        *,
        conversations: ConversationService,
        messages: MessageService,
        timeline: TimelineStore,
        notices: Notices,
        max_text_chars: int,
        max_metadata_bytes: int,
    ) -> None:
        self._conversations = conversations
        self._messages = messages
        self._timeline = timeline
        self._notices = notices
        self._max_text = max_text_chars
        self._max_metadata_bytes = max_metadata_bytes

    async def page(
        self,
        conversation_id: str,
        *,
        viewer: str,
        limit: int = 50,
        before: int | None = None,
        after: int | None = None,
        around: str | None = None,
    ) -> TimelinePage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        if sum(x is not None for x in (before, after, around)) > 1:
            raise InvalidInput("give at most one of before, after and around")
        conversation_id = await self._readable(conversation_id, viewer)
        if around is not None:
            anchor = await self._messages.get(around, viewer=viewer)
            if anchor.conversation_id != conversation_id:
                raise NotFound("no such message in this conversation")
            older = await self._timeline.page(conversation_id, viewer=viewer, before=anchor.sequence_number, after=None, limit=limit // 2) if limit > 1 else []
            newer_limit = limit - len(older) - 1
            newer = await self._timeline.page(conversation_id, viewer=viewer, before=None, after=anchor.sequence_number, limit=newer_limit) if newer_limit else []
            items = [*older, anchor, *newer]
        else:
            items = await self._timeline.page(conversation_id, viewer=viewer, before=before, after=after, limit=limit)
        if not items:
            return TimelinePage(items=[], prev_cursor=None, next_cursor=None)
        first, last = items[0].sequence_number, items[-1].sequence_number
        older_exists = await self._timeline.has_visible(conversation_id, viewer=viewer, below=first, above=None)
        newer_exists = await self._timeline.has_visible(conversation_id, viewer=viewer, below=None, above=last)
        return TimelinePage(
            items=items, prev_cursor=first if older_exists else None, next_cursor=last if newer_exists else None
        )

    async def _readable(self, conversation_id: str, viewer: str) -> str:
        """Members read the timeline; so do former members (up to their removal)."""
        found = await self._conversations.find(conversation_id)
        if found is None or not (found.has_member(viewer) or viewer in found.former):
            found = await self._conversations.fresh(conversation_id)  # a change made on another node
        if found is None or not (found.has_member(viewer) or viewer in found.former):
            raise NotFound("no such conversation")
        return found.conversation_id

    async def get(self, message_id: str, *, viewer: str) -> Message:
        return await self._messages.get(message_id, viewer=viewer)

    async def versions(self, message_id: str, *, viewer: str) -> list[MessageVersion]:
        message = await self._messages.get(message_id, viewer=viewer)
        if message.deleted:
            return []
        stored = await self._timeline.versions(message.message_id)
        return stored or [MessageVersion(version=1, payload=message.payload, metadata=message.metadata, at=message.created_at)]

    async def edit(
        self, message_id: str, *, viewer: str, payload: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
    ) -> Message:
        if payload is None and metadata is None:
            raise InvalidInput("give a new payload or new metadata")
        message = await self._messages.get(message_id, viewer=viewer)
        if message.sender != viewer or message.kind != "user":
            raise Forbidden("only the sender edits a message")
        await self._conversations.get(message.conversation_id, viewer=viewer)  # 403 once they left
        if message.deleted:
            raise Conflict("the message was deleted")
        if payload is not None:
            if message.payload.get("type") != "text":
                raise InvalidInput("only a text message's payload can be edited (a file message's metadata can)")
            if len(payload.get("text", "")) > self._max_text:
                raise PayloadTooLarge(f"text is longer than {self._max_text} characters")
        if metadata is not None:
            self._check_metadata(metadata)
        if (payload is None or payload == message.payload) and (metadata is None or metadata == message.metadata):
            return message  # nothing changes (a retry of an edit made): no new version
        edited = await self._timeline.edit(message.message_id, payload=payload, metadata=metadata, at=utcnow())
        await self._notices.message_changed(edited)
        return edited

    async def delete(self, message_id: str, *, viewer: str) -> None:
        message = await self._messages.get(message_id, viewer=viewer)
        if message.kind != "user":
            raise Forbidden("system messages are not deleted")
        if message.deleted:
            return
        if message.sender != viewer:
            conversation = await self._conversations.fresh(message.conversation_id)
            if conversation is None or conversation.role_of(viewer) not in ("owner", "admin"):
                raise Forbidden("only the sender, or an owner or admin of the group, deletes a message")
        deleted = await self._timeline.delete(message.message_id, at=utcnow())
        if deleted is not None:
            await self._notices.message_changed(deleted)

    def _check_metadata(self, metadata: dict[str, Any]) -> None:
        if len(metadata) > MAX_METADATA_KEYS:
            raise InvalidInput(f"metadata has at most {MAX_METADATA_KEYS} keys")
        if len(orjson.dumps(metadata)) > self._max_metadata_bytes:
            raise PayloadTooLarge(f"metadata is larger than {self._max_metadata_bytes} bytes as JSON")


def parse_message_id(value: str) -> str:
    try:
        return parse_uuid(value)
    except ValueError:
        raise NotFound("no such message") from None
