"""MetadataStore contract (R1.1–1.5, R14.1, refresh-token rotation of R8.3)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chat4all.domain.errors import Conflict, UsernameTaken
from chat4all.domain.identities import ChannelClaim
from chat4all.domain.models import User
from chat4all.ports import MetadataStore

T0 = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def user(username: str, *, at: datetime = T0) -> User:
    return User(username=username, password_hash=f"$2b$04$hash-of-{username}", created_at=at)


async def test_a_created_user_reads_back_unchanged(metadata_store: MetadataStore) -> None:
    alice = user("alice")
    await metadata_store.create_user(alice)

    found = await metadata_store.get_user("alice")

    assert found == alice
    assert found is not None and found.created_at.tzinfo is not None


async def test_an_unknown_user_is_none(metadata_store: MetadataStore) -> None:
    assert await metadata_store.get_user("nobody") is None


async def test_a_taken_username_is_rejected_and_the_first_user_kept(metadata_store: MetadataStore) -> None:
    await metadata_store.create_user(user("alice"))

    with pytest.raises(UsernameTaken):
        await metadata_store.create_user(User(username="alice", password_hash="other", created_at=T0))

    found = await metadata_store.get_user("alice")
    assert found is not None and found.password_hash == user("alice").password_hash


async def test_existing_usernames_names_only_the_registered_ones(metadata_store: MetadataStore) -> None:
    await metadata_store.create_user(user("alice"))
    await metadata_store.create_user(user("bob"))

    assert await metadata_store.existing_usernames(["alice", "carol", "bob", "alice"]) == {"alice", "bob"}
    assert await metadata_store.existing_usernames(["carol"]) == set()
    assert await metadata_store.existing_usernames([]) == set()


async def test_channels_are_set_overwritten_read_and_deleted(metadata_store: MetadataStore) -> None:
    await metadata_store.create_user(user("alice"))
    assert await metadata_store.get_channels("alice") == {}

    await metadata_store.set_channel("alice", "telegram", "111")
    await metadata_store.set_channel("alice", "whatsapp", "+5511999990000")
    await metadata_store.set_channel("alice", "telegram", "222")  # overwrite

    assert await metadata_store.get_channels("alice") == {"telegram": "222", "whatsapp": "+5511999990000"}
    assert await metadata_store.delete_channel("alice", "telegram") is True
    assert await metadata_store.get_channels("alice") == {"whatsapp": "+5511999990000"}


async def test_deleting_an_absent_channel_returns_false(metadata_store: MetadataStore) -> None:
    await metadata_store.create_user(user("alice"))

    assert await metadata_store.delete_channel("alice", "telegram") is False

    await metadata_store.set_channel("alice", "telegram", "111")
    assert await metadata_store.delete_channel("alice", "telegram") is True
    assert await metadata_store.delete_channel("alice", "telegram") is False


async def test_two_users_cannot_hold_the_same_external_identity(metadata_store: MetadataStore) -> None:
    await metadata_store.create_user(user("alice"))
    await metadata_store.create_user(user("bob"))
    await metadata_store.set_channel("alice", "telegram", "111")

    with pytest.raises(Conflict):
        await metadata_store.set_channel("bob", "telegram", "111")

    assert await metadata_store.get_channels("bob") == {}
    assert await metadata_store.find_user_by_channel("telegram", "111") == "alice"


async def test_the_same_external_id_on_different_channels_is_no_conflict(metadata_store: MetadataStore) -> None:
    await metadata_store.create_user(user("alice"))
    await metadata_store.create_user(user("bob"))

    await metadata_store.set_channel("alice", "instagram", "same-id")
    await metadata_store.set_channel("bob", "messenger", "same-id")

    assert await metadata_store.find_user_by_channel("instagram", "same-id") == "alice"
    assert await metadata_store.find_user_by_channel("messenger", "same-id") == "bob"


async def test_an_overwritten_identity_is_free_for_another_user(metadata_store: MetadataStore) -> None:
    await metadata_store.create_user(user("alice"))
    await metadata_store.create_user(user("bob"))
    await metadata_store.set_channel("alice", "telegram", "111")
    await metadata_store.set_channel("alice", "telegram", "222")

    await metadata_store.set_channel("bob", "telegram", "111")

    assert await metadata_store.find_user_by_channel("telegram", "111") == "bob"
    assert await metadata_store.find_user_by_channel("telegram", "222") == "alice"


async def test_find_user_by_channel_is_none_for_an_unmapped_identity(metadata_store: MetadataStore) -> None:
    await metadata_store.create_user(user("alice"))
    await metadata_store.set_channel("alice", "telegram", "111")

    assert await metadata_store.find_user_by_channel("telegram", "999") is None
    assert await metadata_store.find_user_by_channel("whatsapp", "111") is None


# refresh tokens -------------------------------------------------------------------------------


async def _add(store: MetadataStore, token_id: str, family_id: str, username: str = "alice") -> None:
    await store.add_refresh_token(
        token_id=token_id, family_id=family_id, username=username, expires_at=T0 + timedelta(days=30)
    )


TOKEN_1, TOKEN_2, TOKEN_3 = (f"00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
FAMILY_A, FAMILY_B = "aaaaaaaa-0000-4000-8000-000000000000", "bbbbbbbb-0000-4000-8000-000000000000"


async def test_a_refresh_token_is_spent_once_then_reported_reused(metadata_store: MetadataStore) -> None:
    await _add(metadata_store, TOKEN_1, FAMILY_A)

    first = await metadata_store.spend_refresh_token(TOKEN_1)
    second = await metadata_store.spend_refresh_token(TOKEN_1)

    assert (first.outcome, first.username, first.family_id) == ("ok", "alice", FAMILY_A)
    assert (second.outcome, second.username, second.family_id) == ("reused", "alice", FAMILY_A)


async def test_an_unknown_refresh_token_is_reported_unknown(metadata_store: MetadataStore) -> None:
    await _add(metadata_store, TOKEN_1, FAMILY_A)

    spend = await metadata_store.spend_refresh_token(TOKEN_2)

    assert spend.outcome == "unknown"
    assert spend.username is None and spend.family_id is None


async def test_revoking_a_family_revokes_every_token_of_it_and_no_other(metadata_store: MetadataStore) -> None:
    await _add(metadata_store, TOKEN_1, FAMILY_A)
    await _add(metadata_store, TOKEN_2, FAMILY_A)
    await _add(metadata_store, TOKEN_3, FAMILY_B, username="bob")
    assert (await metadata_store.spend_refresh_token(TOKEN_1)).outcome == "ok"

    await metadata_store.revoke_refresh_family(FAMILY_A)

    spent_before = await metadata_store.spend_refresh_token(TOKEN_1)
    unspent = await metadata_store.spend_refresh_token(TOKEN_2)
    other_family = await metadata_store.spend_refresh_token(TOKEN_3)
    assert (spent_before.outcome, spent_before.family_id) == ("revoked", FAMILY_A)
    assert (unspent.outcome, unspent.username) == ("revoked", "alice")
    assert (other_family.outcome, other_family.username, other_family.family_id) == ("ok", "bob", FAMILY_B)


async def test_concurrent_spends_of_one_token_succeed_exactly_once(metadata_store: MetadataStore) -> None:
    await _add(metadata_store, TOKEN_1, FAMILY_A)

    outcomes = await asyncio.gather(*(metadata_store.spend_refresh_token(TOKEN_1) for _ in range(8)))

    assert sorted(o.outcome for o in outcomes) == ["ok"] + ["reused"] * 7


async def test_a_spend_records_when_and_a_reuse_reports_the_first_spend(metadata_store: MetadataStore) -> None:
    await _add(metadata_store, TOKEN_1, FAMILY_A)
    before = datetime.now(UTC)

    first = await metadata_store.spend_refresh_token(TOKEN_1)
    again = await metadata_store.spend_refresh_token(TOKEN_1)

    assert first.used_at is not None and before - timedelta(seconds=1) <= first.used_at <= datetime.now(UTC)
    assert again.used_at is not None and abs((again.used_at - first.used_at).total_seconds()) < 1e-3


async def test_a_family_reads_revoked_once_revoked_and_an_unknown_one_does_not(metadata_store: MetadataStore) -> None:
    await _add(metadata_store, TOKEN_1, FAMILY_A)
    await _add(metadata_store, TOKEN_2, FAMILY_B, username="bob")
    assert not await metadata_store.revoked_refresh_families([FAMILY_A])
    assert not await metadata_store.revoked_refresh_families(["cccccccc-0000-4000-8000-000000000000"])

    await metadata_store.revoke_refresh_family(FAMILY_A)

    assert await metadata_store.revoked_refresh_families([FAMILY_A])
    assert not await metadata_store.revoked_refresh_families([FAMILY_B])
    unknown = "cccccccc-0000-4000-8000-000000000000"
    assert await metadata_store.revoked_refresh_families([FAMILY_B, FAMILY_A, unknown, FAMILY_A]) == {FAMILY_A}
    assert await metadata_store.revoked_refresh_families([]) == set()


async def test_many_families_are_read_at_once(metadata_store: MetadataStore) -> None:
    families = [f"eeeeeeee-0000-4000-8000-{i:012d}" for i in range(300)]  # more than one etcd txn
    for i, family in enumerate(families[:150]):
        await _add(metadata_store, f"ffffffff-0000-4000-8000-{i:012d}", family)
    for family in families[:150:7]:
        await metadata_store.revoke_refresh_family(family)

    assert await metadata_store.revoked_refresh_families(families) == set(families[:150:7])


async def test_revoking_a_users_families_revokes_all_of_theirs_and_no_one_elses(metadata_store: MetadataStore) -> None:
    await _add(metadata_store, TOKEN_1, FAMILY_A)
    await _add(metadata_store, TOKEN_2, "dddddddd-0000-4000-8000-000000000000")
    await _add(metadata_store, TOKEN_3, FAMILY_B, username="bob")

    await metadata_store.revoke_user_refresh_families("alice")

    assert await metadata_store.revoked_refresh_families([FAMILY_A])
    assert await metadata_store.revoked_refresh_families(["dddddddd-0000-4000-8000-000000000000"])
    assert (await metadata_store.spend_refresh_token(TOKEN_2)).outcome == "revoked"
    assert not await metadata_store.revoked_refresh_families([FAMILY_B])
    assert (await metadata_store.spend_refresh_token(TOKEN_3)).outcome == "ok"


async def test_a_password_hash_is_replaced(metadata_store: MetadataStore) -> None:
    await metadata_store.create_user(user("alice"))

    await metadata_store.set_password_hash("alice", "$2b$04$another-hash")

    found = await metadata_store.get_user("alice")
    assert found is not None and found.password_hash == "$2b$04$another-hash" and found.created_at == T0


# claims of channel identities (hardening: an identity is linked once proven)


def claim(username: str, code: str, *, external_id: str = "+15550002222", expires_at: datetime | None = None) -> ChannelClaim:
    return ChannelClaim(
        username=username,
        channel="whatsapp",
        external_id=external_id,
        code=code,
        expires_at=expires_at or datetime.now(UTC) + timedelta(minutes=15),
    )


async def test_claims_of_an_identity_are_kept_per_claimant_and_a_new_code_replaces_the_old(
    metadata_store: MetadataStore,
) -> None:
    for name in ("bob", "mallory"):
        await metadata_store.create_user(user(name))
    await metadata_store.add_channel_claim(claim("bob", "111111"))
    await metadata_store.add_channel_claim(claim("mallory", "222222"))
    await metadata_store.add_channel_claim(claim("bob", "333333"))  # bob asked again
    await metadata_store.add_channel_claim(claim("bob", "444444", external_id="+15550003333"))

    found = await metadata_store.channel_claims("whatsapp", "+15550002222")

    assert sorted((c.username, c.code) for c in found) == [("bob", "333333"), ("mallory", "222222")]
    assert all(c.channel == "whatsapp" and c.external_id == "+15550002222" for c in found)
    assert all(c.expires_at.tzinfo is not None for c in found)
    assert await metadata_store.channel_claims("instagram", "+15550002222") == []


async def test_dropping_the_claims_of_an_identity_leaves_the_others(metadata_store: MetadataStore) -> None:
    for name in ("bob", "mallory"):
        await metadata_store.create_user(user(name))
    await metadata_store.add_channel_claim(claim("bob", "111111"))
    await metadata_store.add_channel_claim(claim("mallory", "222222"))
    await metadata_store.add_channel_claim(claim("bob", "444444", external_id="+15550003333"))

    await metadata_store.drop_channel_claims("whatsapp", "+15550002222")

    assert await metadata_store.channel_claims("whatsapp", "+15550002222") == []
    assert [c.code for c in await metadata_store.channel_claims("whatsapp", "+15550003333")] == ["444444"]
