"""Claiming a channel identity needs proof (hardening): the claimant is given a code and the
identity is linked only when a message carrying it arrives *from* that identity, through the
channel's provider. Nobody can squat another's number by typing it."""

from __future__ import annotations

import pytest

from chat4all.client import ApiError
from tests.conftest import RunningServer
from tests.connector_helpers import QUICK, Channels, simulated_post, telegram_post
from tests.fake_telegram import running_fake_telegram, update

BOB = "+1 (555) 000-2222"
BOB_E164 = "+15550002222"


@pytest.fixture
async def whatsapp(server: RunningServer) -> Channels:
    channels = Channels(server)
    await channels.set("whatsapp", **QUICK)
    return channels


async def from_identity(server: RunningServer, channels: Channels, number: str, text: str, provider_id: str) -> dict:
    message = {"type": "message", "from": number, "text": text, "id": provider_id}
    answer = await simulated_post(server.base_url, "whatsapp", await channels.secret("whatsapp"), message)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_claim_is_pending_until_its_code_arrives_from_the_identity(
    server: RunningServer, whatsapp: Channels, make_user
) -> None:
    bob = await make_user("bob")
    claim = await bob.set_channel("whatsapp", BOB)
    assert claim["status"] == "pending" and claim["external_id"] == BOB_E164
    assert len(claim["code"]) == 6 and claim["code"].isdigit()
    assert claim["expires_at"] and claim["code"] in claim["instructions"]
    assert (await bob.me())["channels"] == {}  # not linked yet: nothing is routed to it

    await from_identity(server, whatsapp, "15550002222", f"my code is {claim['code']}", "wamid-1")  # provider drops '+'

    assert (await bob.me())["channels"] == {"whatsapp": BOB_E164}
    again = await bob.set_channel("whatsapp", BOB_E164)  # the holder asking again: linked, no new code
    assert (again["status"], again["code"]) == ("linked", None)


async def test_a_squatter_gets_a_code_but_cannot_send_it_from_the_number(
    server: RunningServer, whatsapp: Channels, make_user
) -> None:
    bob = await make_user("bob")
    mallory = await make_user("mallory")
    squat = await mallory.set_channel("whatsapp", BOB)
    # mallory sends her code from her own number, and guesses from bob's: neither links bob's number
    await from_identity(server, whatsapp, "+15550009999", squat["code"], "wamid-m1")
    wrong = "000000" if squat["code"] != "000000" else "111111"
    await from_identity(server, whatsapp, BOB_E164, wrong, "wamid-m2")
    assert (await mallory.me())["channels"] == {}

    claim = await bob.set_channel("whatsapp", BOB)
    await from_identity(server, whatsapp, BOB_E164, claim["code"], "wamid-b1")
    assert (await bob.me())["channels"] == {"whatsapp": BOB_E164}
    assert (await mallory.me())["channels"] == {}

    # bob's number is his now: mallory's old code no longer links it, and a new claim is refused
    await from_identity(server, whatsapp, BOB_E164, squat["code"], "wamid-m3")
    assert (await bob.me())["channels"] == {"whatsapp": BOB_E164}
    with pytest.raises(ApiError) as taken:
        await mallory.set_channel("whatsapp", BOB_E164)
    assert (taken.value.status, taken.value.code) == (409, "conflict")


async def test_the_provider_hears_the_code_was_taken_and_a_redelivery_changes_nothing(
    server: RunningServer, whatsapp: Channels, make_user
) -> None:
    bob = await make_user("bob")
    claim = await bob.set_channel("whatsapp", BOB)
    assert await from_identity(server, whatsapp, BOB_E164, claim["code"], "wamid-code") == {
        "ok": True, "accepted": 1, "ignored": 0
    }
    # the provider delivers the same message again: bob's number has no bridged conversation and
    # the claim is spent, so it is ignored (and not posted as a message anywhere)
    assert await from_identity(server, whatsapp, BOB_E164, claim["code"], "wamid-code") == {
        "ok": True, "accepted": 0, "ignored": 1
    }
    assert (await bob.me())["channels"] == {"whatsapp": BOB_E164}


async def test_telegram_identities_are_proven_by_a_message_to_the_bot(server: RunningServer, make_user) -> None:
    async with running_fake_telegram() as fake:
        channels = Channels(server)
        await channels.telegram(fake)
        bob = await make_user("bob")
        claim = await bob.set_channel("telegram", "4242")
        await telegram_post(server.base_url, update(4243, f"/start {claim['code']}"))  # another chat
        assert (await bob.me())["channels"] == {}
        await telegram_post(server.base_url, update(4242, f"/start {claim['code']}", update_id=2))
        assert (await bob.me())["channels"] == {"telegram": "4242"}


@pytest.mark.settings(verify_channel_identities=False)
async def test_an_operator_who_verified_identities_itself_turns_the_proof_off(make_user) -> None:
    bob = await make_user("bob")
    linked = await bob.set_channel("whatsapp", BOB)
    assert (linked["status"], linked["code"]) == ("linked", None)
    assert (await bob.me())["channels"] == {"whatsapp": BOB_E164}
