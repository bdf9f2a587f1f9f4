"""MessageService on fakes: what an accept appends, duplicates found in the store or in the
accepted ids, and the send rate limit refilling as the clock moves (no sleep)."""

from __future__ import annotations

import uuid

import pytest

from chat4all.domain.errors import Conflict, Forbidden, NotFound
from chat4all.domain.events import MessageEvent
from chat4all.domain.limits import RateLimited
from chat4all.ports import NewMessage
from chat4all.services.abuse import AbuseGuard, AbuseRules
from chat4all.services.conversations import ConversationService
from chat4all.services.messages import MessageService
from tests.fakes.clock import FakeClock
from tests.fakes.log import FakeEventLog
from tests.fakes.users import FakeMetadataStore
from tests.fakes.world import FakeWorld

from .conftest import add_users, group, limiter

CHAT = "aaaaaaaa-0000-4000-8000-000000000001"
TEXT = {"type": "text", "text": "hello"}


@pytest.fixture
async def service(world: FakeWorld, metadata: FakeMetadataStore, log: FakeEventLog, clock: FakeClock) -> MessageService:
    await add_users(metadata, clock, "alice", "bob", "carol")
    await group(world, clock, CHAT, "alice", "bob", "carol")
    rules = AbuseRules(send_messages_per_minute=2)
    return MessageService(
        conversations=ConversationService(conversations=world.conversations, metadata=metadata, clock=clock),
        messages=world.messages,
        log=log,
        max_text_chars=4096,
        guard=AbuseGuard(limiter(clock), rules),
        accepted_ids=world.accepted_ids,
        clock=clock,
    )


def appended(log: FakeEventLog) -> list[MessageEvent]:
    return [MessageEvent.decode(r.value) for r in log.records(MessageEvent.topic)]


async def test_an_accepted_message_is_one_event_on_the_log_stamped_by_the_clock(
    service: MessageService, log: FakeEventLog, clock: FakeClock
) -> None:
    accepted = await service.accept(caller="alice", conversation_id=CHAT, payload=TEXT)

    [event] = appended(log)
    assert (event.message_id, event.sender, event.accepted_at) == (accepted.message_id, "alice", clock.now)
    assert sorted(event.recipients) == ["bob", "carol"]
    assert accepted.status == "accepted" and not accepted.duplicate


async def test_a_retry_before_the_router_stored_it_is_a_duplicate_appended_again(
    service: MessageService, log: FakeEventLog
) -> None:
    """A claim does not prove the append (the first node may have died in between): the retry
    appends again — the router keeps one copy — and answers as a duplicate."""
    message_id = str(uuid.uuid4())
    first = await service.accept(caller="alice", conversation_id=CHAT, payload=TEXT, message_id=message_id)

    again = await service.accept(caller="alice", conversation_id=CHAT, payload=TEXT, message_id=message_id)

    assert not first.duplicate and again.duplicate and again.message_id == message_id
    assert [e.message_id for e in appended(log)] == [message_id, message_id]


async def test_a_stored_message_id_answers_with_its_status_without_an_append(
    service: MessageService, world: FakeWorld, log: FakeEventLog, clock: FakeClock
) -> None:
    message_id = str(uuid.uuid4())
    stored = NewMessage(message_id, CHAT, "alice", ["bob"], ["internal"], TEXT, {}, clock(), [("bob", "internal")])
    await world.messages.persist_batch([stored], at=clock())

    answer = await service.accept(caller="alice", conversation_id=CHAT, payload=TEXT, message_id=message_id)

    assert answer.duplicate and answer.status == "SENT"
    assert appended(log) == []


async def test_someone_elses_message_id_is_refused(service: MessageService) -> None:
    message_id = str(uuid.uuid4())
    await service.accept(caller="alice", conversation_id=CHAT, payload=TEXT, message_id=message_id)

    with pytest.raises(Conflict):
        await service.accept(caller="bob", conversation_id=CHAT, payload=TEXT, message_id=message_id)


async def test_only_members_send_and_only_as_themselves(service: MessageService, metadata: FakeMetadataStore) -> None:
    await metadata.create_user(metadata.users["alice"].model_copy(update={"username": "mallory"}))
    with pytest.raises(NotFound):
        await service.accept(caller="mallory", conversation_id=CHAT, payload=TEXT)
    with pytest.raises(Forbidden):
        await service.accept(caller="alice", sender="bob", conversation_id=CHAT, payload=TEXT)


async def test_the_send_limit_refuses_then_lets_through_once_the_clock_has_moved(
    service: MessageService, clock: FakeClock
) -> None:
    for _ in range(2):
        await service.accept(caller="alice", conversation_id=CHAT, payload=TEXT)
    with pytest.raises(RateLimited) as refused:
        await service.accept(caller="alice", conversation_id=CHAT, payload=TEXT)
    assert refused.value.decision.retry_after_s > 0

    clock.advance(refused.value.decision.retry_after_s)

    await service.accept(caller="alice", conversation_id=CHAT, payload=TEXT)
