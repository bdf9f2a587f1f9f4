"""Webhook ``message.received`` over real HTTP to a real receiver (embedded profile): one signed
callback per message addressed to the webhook's owner, whatever the channels, retried like
every callback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chat4all.config import Settings
from chat4all.domain.webhooks import EVENT_TYPE_HEADER
from tests.api.test_webhooks import register
from tests.conftest import wait_until
from tests.webhook_receiver import Receiver, running_receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhooks_retry_base_s": 0.05,
            "webhooks_poll_interval_s": 0.05,
            "webhooks_allowed_networks": "127.0.0.0/8,::1/128",
        }
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


async def test_each_message_to_the_owner_yields_one_signed_message_received_callback(make_user, receiver: Receiver) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    await bob.set_channel("whatsapp", "+5511977776666")  # a second delivery of the same message
    bob_hook = await register(bob, receiver.url("/bob"), ["message.received"])
    await register(carol, receiver.url("/carol"))  # every type but the opt-in message.received
    conversation_id = (await alice.create_conversation("group", ["bob", "carol"], name="team"))["conversation_id"]

    receiver.script = [500]  # the first attempt fails: retried with the same event id
    first = await alice.send_text(conversation_id, "hello bob", channels=["all"], metadata={"k": "v"})
    await wait_until(lambda: receiver.count(2, "/bob"), what="bob's first callback, retried")
    alice_hook = await register(alice, receiver.url("/alice"), ["message.received"])
    second = await carol.send_text(conversation_id, "and from carol")
    calls = await wait_until(lambda: receiver.count(3, "/bob"), what="bob's callbacks")

    delivered = [c for c in calls if c.status == 200]
    # one per message: bob's two deliveries of the first (internal, whatsapp) are one callback
    assert sorted(c.json["data"]["message"]["message_id"] for c in delivered) == sorted(
        [first["message_id"], second["message_id"]]
    )
    assert calls[0].status == 500 and calls[0].event_id in {c.event_id for c in delivered}
    by_id = {c.json["data"]["message"]["message_id"]: c for c in delivered}
    call = by_id[first["message_id"]]
    assert call.verifies(bob_hook["secret"])
    assert call.headers[EVENT_TYPE_HEADER.lower()] == "message.received"
    assert call.json["type"] == "message.received"
    data = call.json["data"]
    assert data["recipient"] == "bob"
    message = data["message"]
    assert message["conversation_id"] == conversation_id and message["from"] == "alice"
    assert message["payload"] == {"type": "text", "text": "hello bob"} and message["metadata"] == {"k": "v"}
    assert message["sequence_number"] == 1 and message["kind"] == "user" and message["deleted"] is False
    assert by_id[second["message_id"]].json["data"]["message"]["from"] == "carol"

    # alice receives carol's message only, never her own
    [alice_call] = await wait_until(lambda: receiver.count(1, "/alice"), what="alice's callback")
    assert alice_call.verifies(alice_hook["secret"])
    assert alice_call.json["data"] == {"recipient": "alice", "message": by_id[second["message_id"]].json["data"]["message"]}
    # a later message: bob's third callback; alice, its sender, still has only carol's
    third = await alice.send_text(conversation_id, "last")

    async def bobs_third() -> bool:
        return third["message_id"] in {c.json["data"]["message"]["message_id"] for c in receiver.to("/bob")}

    await wait_until(bobs_third, what="bob's callback for the third message")
    assert len([c for c in receiver.to("/bob") if c.status == 200]) == 3
    assert [c.json["data"]["message"]["message_id"] for c in receiver.to("/alice")] == [second["message_id"]]
    # carol's "*" webhook got her own message's statuses, never the messages sent to her
    carol_calls = await wait_until(lambda: receiver.count(2, "/carol"), what="carol's status callbacks")
    assert {c.json["type"] for c in carol_calls} == {"message.status"}
    assert {c.json["data"]["message_id"] for c in carol_calls} == {second["message_id"]}
