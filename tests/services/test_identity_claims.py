"""UserService's claims with time under the test's control: a code lapses at its expiry and
proves nothing after it; codes are read from the message however it is worded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat4all.domain import identities
from chat4all.domain.models import User
from chat4all.services.users import UserService
from tests.fakes.clock import FakeClock
from tests.fakes.users import FakeMetadataStore


@pytest.fixture
async def store() -> FakeMetadataStore:
    metadata = FakeMetadataStore()
    for name in ("bob", "carol"):
        await metadata.create_user(User(username=name, password_hash="x", created_at=FakeClock()()))
    return metadata


async def test_a_code_proves_the_claim_until_it_expires_and_not_after(store: FakeMetadataStore) -> None:
    clock = FakeClock()
    users = UserService(metadata=store, claim_ttl_s=600, clock=clock)
    claim = await users.set_channel("bob", channel="whatsapp", external_id="+15550002222")
    assert claim.claim is not None and claim.claim.expires_at == clock.now + timedelta(seconds=600)

    clock.advance(601)
    assert await users.prove("whatsapp", "+15550002222", claim.claim.code) is None
    assert await store.get_channels("bob") == {}

    fresh = await users.set_channel("bob", channel="whatsapp", external_id="+15550002222")
    assert fresh.claim is not None
    clock.advance(599)
    assert await users.prove("whatsapp", "+15550002222", f"code: {fresh.claim.code}.") == "bob"
    assert await store.get_channels("bob") == {"whatsapp": "+15550002222"}
    assert await store.channel_claims("whatsapp", "+15550002222") == []  # spent, with every rival claim


async def test_two_claimants_each_get_a_code_and_only_the_one_sent_from_the_identity_wins(
    store: FakeMetadataStore,
) -> None:
    users = UserService(metadata=store, clock=FakeClock())
    bob = await users.set_channel("bob", channel="instagram", external_id="bob.insta")
    carol = await users.set_channel("carol", channel="instagram", external_id="bob.insta")
    assert bob.claim and carol.claim and bob.claim.code != carol.claim.code  # never one code for two claimants
    assert await users.prove("instagram", "bob.insta", "hello there") is None  # no code in it
    assert await users.prove("instagram", "bob.insta", f"{bob.claim.code}") == "bob"
    assert await store.get_channels("carol") == {}


def test_codes_are_runs_of_exactly_six_digits() -> None:
    assert identities.codes_in("/start 042519") == {"042519"}
    assert identities.codes_in("code 123456 or 654321!") == {"123456", "654321"}
    assert identities.codes_in("1234567 12345 +15550002222") == set()
    assert len(identities.new_code()) == 6 and identities.new_code().isdigit()
