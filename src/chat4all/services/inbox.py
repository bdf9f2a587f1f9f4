"""The inbox and read cursors (API v2): each conversation as one user sees it — last message,
unread count, read cursor — ordered by last activity, with a ``since`` token for sync.

A sync token is the time the answer was made; ``since`` returns what changed after it, less a
margin (``SYNC_MARGIN``) that covers changes committed out of clock order across nodes: a sync
may repeat a conversation, it never misses one.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from chat4all.domain.errors import InvalidInput, NotFound
from chat4all.domain.ids import parse_uuid, utcnow
from chat4all.domain.models import Conversation
from chat4all.domain.status import DeliveryStatus
from chat4all.domain.views import members_view, v2_message
from chat4all.ports import InboxEntry, MembershipStore, TimelineStore
from chat4all.services.deliveries import MAX_IDS_PER_RECEIPT, DeliveryService
from chat4all.services.notices import Notices

SYNC_MARGIN = timedelta(seconds=5)
# a read cursor marks at most this many batches of MAX_IDS_PER_RECEIPT messages per call (the
# rest stay unread for the next call; the cursor itself has moved)
MAX_READ_BATCHES = 50
INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class InboxPage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    sync_token: str


class InboxService:
    def __init__(
        self,
        *,
        membership: MembershipStore,
        timeline: TimelineStore,
        deliveries: DeliveryService,
        notices: Notices,
    ) -> None:
        self._membership = membership
        self._timeline = timeline
        self._deliveries = deliveries
        self._notices = notices

    # summaries -------------------------------------------------------------------------------

    async def summary(self, conversation_id: str, *, viewer: str) -> dict[str, Any]:
        """The conversation as the viewer sees it; NotFound unless they are a member now."""
        try:
            conversation_id = parse_uuid(conversation_id)
        except ValueError:
            raise NotFound("no such conversation") from None
        entry = await self._membership.entry(conversation_id, viewer)
        if entry is None or entry.membership != "member":
            raise NotFound("no such conversation")
        return (await self._views([entry], viewer))[0]

    async def summaries(self, conversation_id: str, usernames: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each user's own view of one conversation (for the frames of a change)."""
        entries = await self._membership.entries(conversation_id, list(dict.fromkeys(usernames)))
        if not entries:
            return {}
        unread = await self._membership.unread_for_members(conversation_id, [e.username for e in entries])
        result = {}
        shared: Any = None  # the last message one user sees is, in a group, usually everyone's
        for entry in entries:
            user = entry.username
            if shared is not None and (shared.sender == user or user in shared.recipients) and shared.sequence_number == entry.last_seq:
                last = shared
            else:
                last = (await self._timeline.last_messages(user, [conversation_id])).get(conversation_id)
                shared = last if last is not None else shared
            result[user] = _summary(entry, last, unread.get(user, 0))
        return result

    async def _views(self, entries: list[InboxEntry], viewer: str) -> list[dict[str, Any]]:
        ids = [e.conversation.conversation_id for e in entries]
        lasts = await self._timeline.last_messages(viewer, ids)
        unread = await self._membership.unread_counts(
            viewer, {e.conversation.conversation_id: e.read_up_to for e in entries if e.membership == "member"}
        )
        return [
            _summary(e, lasts.get(e.conversation.conversation_id), unread.get(e.conversation.conversation_id, 0))
            for e in entries
        ]

    async def inbox(
        self, viewer: str, *, limit: int = 20, cursor: str | None = None, since: str | None = None
    ) -> InboxPage:
        if not 1 <= limit <= 200:
            raise InvalidInput("limit must be between 1 and 200")
        now = utcnow()
        changed_since = _decode_token(since) if since else None
        after = _decode_cursor(cursor) if cursor else None
        entries = await self._membership.inbox(viewer, limit=limit + 1, after=after, changed_since=changed_since)
        more = len(entries) > limit
        entries = entries[:limit]
        items = await self._views(entries, viewer)
        next_cursor = _encode_cursor(entries[-1]) if more else None
        return InboxPage(items=items, next_cursor=next_cursor, sync_token=_encode_token(now))

    # read cursors ----------------------------------------------------------------------------

    async def read(self, conversation_id: str, *, viewer: str, up_to: int) -> dict[str, Any]:
        """Moves the viewer's cursor (forward only) and marks every message up to it READ, with
        a status event (and webhook) per message, as v1's READ; the viewer's sockets are told."""
        if up_to < 0:
            raise InvalidInput("up_to_sequence must be 0 or more")
        try:
            conversation_id = parse_uuid(conversation_id)
        except ValueError:
            raise NotFound("no such conversation") from None
        entry = await self._membership.entry(conversation_id, viewer)
        if entry is None or entry.membership != "member":
            raise NotFound("no such conversation")
        cursor = await self._membership.move_read_cursor(conversation_id, viewer, up_to, at=utcnow())
        for _ in range(MAX_READ_BATCHES):
            unread_ids = await self._timeline.unread_ids(conversation_id, viewer, up_to=cursor, limit=MAX_IDS_PER_RECEIPT)
            if not unread_ids:
                break
            moved = await self._deliveries.record(
                username=viewer, channel=INTERNAL, message_ids=unread_ids, status=DeliveryStatus.READ
            )
            if moved == 0 and len(unread_ids) < MAX_IDS_PER_RECEIPT:
                break
        unread = (await self._membership.unread_counts(viewer, {conversation_id: cursor}))[conversation_id]
        await self._notices.read_cursor(viewer, conversation_id, cursor, unread)
        return {"conversation_id": conversation_id, "read_up_to": cursor, "unread_count": unread}


def conversation_view(c: Conversation) -> dict[str, Any]:
    return {
        "conversation_id": c.conversation_id,
        "type": c.type.value,
        "name": c.name,
        "topic": c.topic,
        "members": members_view(c),
        "created_by": c.created_by,
        "created_at": c.created_at.isoformat(),
        "metadata": c.metadata,
    }


def _summary(entry: InboxEntry, last: Any, unread: int) -> dict[str, Any]:
    view = conversation_view(entry.conversation)
    view.update(
        {
            "last_message": v2_message(last) if last is not None else None,
            "last_sequence": entry.last_seq,
            "last_activity_at": entry.last_activity_at.isoformat(),
            "read_up_to": entry.read_up_to,
            "unread_count": unread if entry.membership == "member" else 0,
            "membership": entry.membership,
        }
    )
    return view


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode_cursor(e: InboxEntry) -> str:
    return _b64(orjson.dumps([e.last_activity_at.isoformat(), e.conversation.conversation_id]))


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, conversation_id = orjson.loads(_unb64(cursor))
        return _aware(datetime.fromisoformat(at)), str(conversation_id)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput("invalid cursor") from exc


def _encode_token(at: datetime) -> str:
    return _b64(orjson.dumps({"t": at.isoformat()}))


def _decode_token(token: str) -> datetime:
    try:
        return _aware(datetime.fromisoformat(orjson.loads(_unb64(token))["t"])) - SYNC_MARGIN
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise InvalidInput("invalid sync token") from exc


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive")
    return value.astimezone(UTC)
