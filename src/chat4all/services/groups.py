"""Group management (API v2): name and topic, members in and out, leaving, roles.

Who may do what: the owner (one per group) does everything; an admin renames, sets the topic,
adds members and removes members (not admins, not the owner); a member only leaves. Private
conversations never change membership (``not_a_group``). Every change is a system message in
the timeline (``services/system_messages.py``), a ``conversation`` frame to the users concerned
and a ``conversation.updated`` callback for their webhooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chat4all.domain.errors import Forbidden, InvalidInput, NotFound, UnknownUser
from chat4all.domain.ids import utcnow
from chat4all.domain.models import Conversation, ConversationType
from chat4all.ports import MembershipStore, MetadataStore
from chat4all.services.conversations import ConversationService
from chat4all.services.inbox import InboxService
from chat4all.services.notices import Notices
from chat4all.services.system_messages import SystemMessages

ROLES = ("owner", "admin", "member")
UNSET: Any = object()


class NotAGroup(InvalidInput):
    code = "not_a_group"


class GroupService:
    def __init__(
        self,
        *,
        conversations: ConversationService,
        membership: MembershipStore,
        metadata: MetadataStore,
        inbox: InboxService,
        system: SystemMessages,
        notices: Notices,
    ) -> None:
        self._conversations = conversations
        self._membership = membership
        self._metadata = metadata
        self._inbox = inbox
        self._system = system
        self._notices = notices

    async def create(self, *, creator: str, type: ConversationType, members: list[str], **fields: Any) -> dict[str, Any]:
        started = utcnow()
        conversation = await self._conversations.create(creator=creator, type=type, members=members, **fields)
        if conversation.created_at < started:  # the pair's existing private conversation: nothing new
            return await self._inbox.summary(conversation.conversation_id, viewer=creator)
        views = await self._inbox.summaries(conversation.conversation_id, conversation.members)
        await self._notices.conversation("created", views, change="created", at=conversation.created_at)
        return views[creator]

    async def update(self, conversation_id: str, *, actor: str, name: Any = UNSET, topic: Any = UNSET) -> dict[str, Any]:
        c = await self._group(conversation_id, actor)
        self._require(c, actor, ("owner", "admin"), "rename the group or set its topic")
        changes = {}
        if name is not UNSET and name != c.name:
            changes["name"] = name
        if topic is not UNSET and topic != c.topic:
            changes["topic"] = topic
        if changes:
            at = utcnow()
            await self._membership.update_details(c.conversation_id, changes, at=at)
            self._conversations.forget(c.conversation_id)
            others = [m for m in c.members if m != actor]
            if "name" in changes:
                await self._system.append(conversation_id=c.conversation_id, actor=actor, recipients=others, event="renamed", name=changes["name"])
            if "topic" in changes:
                await self._system.append(conversation_id=c.conversation_id, actor=actor, recipients=others, event="topic_changed", topic=changes["topic"])
            await self._announce("updated", c.conversation_id, c.members, at=at)
        return await self._inbox.summary(c.conversation_id, viewer=actor)

    async def add_members(self, conversation_id: str, *, actor: str, usernames: Sequence[str]) -> dict[str, Any]:
        c = await self._group(conversation_id, actor)
        self._require(c, actor, ("owner", "admin"), "add members")
        wanted = [u for u in dict.fromkeys(usernames) if u not in c.members]
        if wanted:
            unknown = set(wanted) - await self._metadata.existing_usernames(wanted)
            if unknown:
                raise UnknownUser(f"{len(unknown)} of the users named are not users", details={"unknown_count": len(unknown)})
            limit = self._conversations.max_members
            if len(c.members) + len(wanted) > limit:
                raise InvalidInput(f"a conversation has at most {limit} members")
            at = utcnow()
            added = await self._membership.add_members(c.conversation_id, wanted, at=at)
            self._conversations.forget(c.conversation_id)
            if added:
                everyone = [*c.members, *added]
                await self._system.append(
                    conversation_id=c.conversation_id, actor=actor, recipients=everyone, event="member_added", usernames=added
                )
                await self._announce("member_added", c.conversation_id, everyone, at=at)
        return await self._inbox.summary(c.conversation_id, viewer=actor)

    async def remove_member(self, conversation_id: str, *, actor: str, username: str) -> None:
        if username == actor:
            return await self.leave(conversation_id, actor=actor)
        c = await self._group(conversation_id, actor)
        role = c.role_of(actor)
        target = c.role_of(username)
        if role not in ("owner", "admin"):
            raise Forbidden("only the owner or an admin removes members")
        if target is None:
            if username in c.former:  # a retry of a removal that was made
                return None
            raise NotFound("not a member of this conversation")
        if role == "admin" and target != "member":
            raise Forbidden("an admin removes members, not admins or the owner")
        at = utcnow()
        removed, _ = await self._membership.remove_member(c.conversation_id, username, at=at)
        self._conversations.forget(c.conversation_id)
        if not removed:
            return None
        remaining = [m for m in c.members if m != username]
        # the removed member sees this one last message, and nothing after it
        await self._system.append(
            conversation_id=c.conversation_id, actor=actor, recipients=c.members, event="member_removed", usernames=[username]
        )
        await self._announce("member_removed", c.conversation_id, [*remaining, username], at=at)
        return None

    async def leave(self, conversation_id: str, *, actor: str) -> None:
        c = await self._group(conversation_id, actor, former_ok=True)
        if not c.has_member(actor):  # a retry of a leave that was made
            return
        at = utcnow()
        removed, successor = await self._membership.remove_member(c.conversation_id, actor, at=at)
        self._conversations.forget(c.conversation_id)
        if not removed:
            return
        remaining = [m for m in c.members if m != actor]
        await self._system.append(
            conversation_id=c.conversation_id, actor=actor, recipients=remaining, event="member_left", username=actor
        )
        if successor is not None:
            await self._system.append(
                conversation_id=c.conversation_id, actor=actor, recipients=remaining, event="role_changed", username=successor, role="owner"
            )
        views = await self._inbox.summaries(c.conversation_id, [*remaining, actor])
        await self._notices.conversation("member_removed", {u: v for u, v in views.items() if u != actor}, change=f"left|{actor}", at=at)
        if actor in views:
            await self._notices.conversation("left", {actor: views[actor]}, change=f"self-left|{actor}", at=at)

    async def set_role(self, conversation_id: str, *, actor: str, username: str, role: str) -> dict[str, Any]:
        if role not in ROLES:
            raise InvalidInput("role is owner, admin or member")
        c = await self._group(conversation_id, actor)
        self._require(c, actor, ("owner",), "change roles")
        if c.role_of(username) is None:
            raise NotFound("not a member of this conversation")
        if username == actor:
            raise InvalidInput("the owner gives ownership to another member; their own role follows")
        if c.role_of(username) != role:
            at = utcnow()
            roles = {username: role}
            if role == "owner":  # one owner per group: the caller becomes an admin
                roles[actor] = "admin"
            await self._membership.set_roles(c.conversation_id, roles, at=at)
            self._conversations.forget(c.conversation_id)
            others = [m for m in c.members if m != actor]
            for user, new_role in roles.items():
                await self._system.append(
                    conversation_id=c.conversation_id, actor=actor, recipients=others, event="role_changed", username=user, role=new_role
                )
            await self._announce("updated", c.conversation_id, c.members, at=at)
        return await self._inbox.summary(c.conversation_id, viewer=actor)

    async def _group(self, conversation_id: str, actor: str, *, former_ok: bool = False) -> Conversation:
        found = await self._conversations.fresh(conversation_id)
        if found is None or not (found.has_member(actor) or (former_ok and actor in found.former)):
            raise NotFound("no such conversation")
        if found.type is not ConversationType.GROUP:
            raise NotAGroup("a private conversation keeps its two members and has no name, topic or roles to manage")
        return found

    @staticmethod
    def _require(c: Conversation, actor: str, roles: tuple[str, ...], what: str) -> None:
        if c.role_of(actor) not in roles:
            raise Forbidden(f"only the {' or '.join(roles)} may {what}", details={"role": c.role_of(actor)})

    async def _announce(self, event: str, conversation_id: str, users: Sequence[str], *, at: Any) -> None:
        views = await self._inbox.summaries(conversation_id, users)
        await self._notices.conversation(event, views, change=event, at=at)
