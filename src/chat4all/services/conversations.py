"""Private and group conversations (R3)."""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from chat4all.batching import GroupCommit
from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.errors import Forbidden, InvalidInput, NotFound, UnknownUser
from chat4all.domain.ids import new_id, parse_uuid
from chat4all.domain.models import Conversation, ConversationType
from chat4all.ports import ConversationStore, MetadataStore
from chat4all.services.abuse import AbuseGuard

MAX_GROUP_MEMBERS = 1000
# a group's membership can change (API v2): a cached group is read again after this long, so a
# change made through another API node is seen within it (this node's own changes at once)
GROUP_CACHE_TTL_S = 2.0


@dataclass(frozen=True, slots=True)
class ConversationPage:
    items: list[Conversation]
    next_cursor: str | None


class ConversationService:
    def __init__(
        self,
        *,
        conversations: ConversationStore,
        metadata: MetadataStore,
        cache_size: int = 10_000,
        max_members: int = MAX_GROUP_MEMBERS,
        guard: AbuseGuard | None = None,
        clock: Clock = system_clock,
        group_cache_ttl_s: float = GROUP_CACHE_TTL_S,
    ) -> None:
        self._clock = clock
        self._group_ttl_s = group_cache_ttl_s
        self._cached_at: dict[str, float] = {}
        self._store = conversations
        self._max_members = max_members
        self._guard = guard
        self._metadata = metadata
        # a private conversation never changes; a group is cached for ``group_cache_ttl_s``
        self._cache: OrderedDict[str, Conversation] = OrderedDict()
        self._cache_size = cache_size
        # what the cache misses at the same moment is read together: a fresh node's first second
        # (every conversation missing at once) is a few reads, not one per conversation
        self._reads: GroupCommit[str, Conversation | None] = GroupCommit(self._read_many, max_batch=500)

    async def create(
        self,
        *,
        creator: str,
        type: ConversationType,
        members: list[str],
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        topic: str | None = None,
    ) -> Conversation:
        everyone = sorted({creator, *members})
        if type is ConversationType.PRIVATE and len(everyone) != 2:
            raise InvalidInput("a private conversation has exactly 2 members: you and one other user")
        if type is ConversationType.GROUP and len(everyone) < 2:
            raise InvalidInput("a group needs at least one member besides you")
        if len(everyone) > self._max_members:
            raise InvalidInput(f"a conversation has at most {self._max_members} members")
        if type is ConversationType.GROUP and self._guard is not None:
            await self._guard.create_group(creator)
        unknown = set(everyone) - await self._metadata.existing_usernames(everyone)
        if unknown:
            # Which of the names exist is not said (only how many do not), and every such request
            # spends an allowance: usernames cannot be probed in bulk through this endpoint.
            if self._guard is not None:
                await self._guard.named_unknown_users(creator)
            raise UnknownUser(
                f"{len(unknown)} of the members named are not users", details={"unknown_count": len(unknown)}
            )
        conversation = Conversation(
            conversation_id=new_id(),
            type=type,
            name=name,
            members=tuple(everyone),
            created_by=creator,
            created_at=self._clock(),
            metadata=metadata or {},
            topic=topic,
            roles={creator: "owner"} if type is ConversationType.GROUP else {},
        )
        private_key = "|".join(everyone) if type is ConversationType.PRIVATE else None
        return await self._store.create_conversation(conversation, private_key=private_key)

    @property
    def max_members(self) -> int:
        return self._max_members

    async def find(self, conversation_id: str) -> Conversation | None:
        """The conversation, from the cache when it can; no access check."""
        cached = self._cache.get(conversation_id)
        if cached is not None and (
            cached.type is ConversationType.PRIVATE
            or time.monotonic() - self._cached_at.get(conversation_id, 0.0) < self._group_ttl_s
        ):
            self._cache.move_to_end(conversation_id)
            return cached
        try:
            conversation_id = parse_uuid(conversation_id)
        except ValueError:
            return None
        found = await self._reads.submit(conversation_id)
        if found is not None:
            self._cache[conversation_id] = found
            self._cache.move_to_end(conversation_id)
            self._cached_at[conversation_id] = time.monotonic()
            if len(self._cache) > self._cache_size:
                dropped, _ = self._cache.popitem(last=False)
                self._cached_at.pop(dropped, None)
        return found

    async def _read_many(self, conversation_ids: Sequence[str]) -> list[Conversation | None]:
        found = await self._store.get_conversations(conversation_ids)
        return [found.get(c) for c in conversation_ids]

    def forget(self, conversation_id: str) -> None:
        """Its membership or details changed (API v2): the next lookup reads the store."""
        self._cache.pop(conversation_id, None)
        self._cached_at.pop(conversation_id, None)

    async def fresh(self, conversation_id: str) -> Conversation | None:
        """Read from the store, bypassing the cache (who may change a group is decided on this)."""
        self.forget(conversation_id)
        return await self.find(conversation_id)

    async def get(self, conversation_id: str, *, viewer: str) -> Conversation:
        """The conversation if the viewer is a member; NotFound otherwise (R2.5). A former member
        (API v2) is told they are not a member any more (403): sends answer 403 for them."""
        found = await self.find(conversation_id)
        if found is not None and viewer in found.former and not found.has_member(viewer):
            raise Forbidden("you are no longer a member of this conversation")
        if found is None or not found.has_member(viewer):
            raise NotFound("no such conversation")
        return found

    async def list(self, viewer: str, *, limit: int = 50, cursor: str | None = None) -> ConversationPage:
        if not 1 <= limit <= 200:
            raise InvalidInput("limit must be between 1 and 200")
        after = _decode_cursor(cursor) if cursor else None
        items = await self._store.list_conversations(viewer, limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        next_cursor = _encode_cursor(items[-1]) if more else None
        return ConversationPage(items=items, next_cursor=next_cursor)


def _encode_cursor(c: Conversation) -> str:
    raw = orjson.dumps([c.created_at.isoformat(), c.conversation_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, conversation_id = orjson.loads(raw)
        parsed = datetime.fromisoformat(created_at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed.astimezone(UTC), str(conversation_id)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput("invalid cursor") from exc
