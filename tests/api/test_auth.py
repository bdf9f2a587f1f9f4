"""R1 / R8.3: registration, login, refresh rotation, the current user and channel mappings."""

from __future__ import annotations

import httpx
import pytest

from chat4all.client import ApiError, Chat4AllClient
from chat4all.config import Settings
from tests.conftest import PASSWORD


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # no grace window: a spent refresh token presented again revokes at once (the window itself
    # is tested in test_sessions.py)
    return settings.model_copy(update={"auth_refresh_reuse_grace_s": 0})


async def test_register_returns_the_user_and_a_taken_name_is_409(anonymous: Chat4AllClient) -> None:
    created = await anonymous.register("alice", PASSWORD)
    assert created["username"] == "alice"
    assert created["created_at"].endswith("Z") or "+00:00" in created["created_at"]

    with pytest.raises(ApiError) as taken:
        await anonymous.register("alice", "another-password")
    assert (taken.value.status, taken.value.code) == (409, "username_taken")


@pytest.mark.parametrize(
    ("username", "password"),
    [("Al", PASSWORD), ("UPPER", PASSWORD), ("a" * 33, PASSWORD), ("has space", PASSWORD), ("bob", "short")],
)
async def test_register_rejects_names_and_passwords_outside_the_rules(
    anonymous: Chat4AllClient, username: str, password: str
) -> None:
    with pytest.raises(ApiError) as refused:
        await anonymous.register(username, password)
    assert (refused.value.status, refused.value.code) == (422, "validation_error")


async def test_login_with_a_wrong_password_or_unknown_user_is_401(anonymous: Chat4AllClient) -> None:
    await anonymous.register("alice", PASSWORD)
    for username, password in (("alice", "wrong-password"), ("nobody", PASSWORD)):
        with pytest.raises(ApiError) as refused:
            await anonymous.login(username, password)
        assert (refused.value.status, refused.value.code) == (401, "unauthenticated")


async def test_token_endpoint_takes_the_oauth2_form_that_swagger_posts(server, anonymous: Chat4AllClient) -> None:
    await anonymous.register("alice", PASSWORD)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post("/v1/auth/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    tokens = response.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 3600
    assert (await Chat4AllClient(server.base_url, token=tokens["access_token"]).me())["username"] == "alice"


async def test_refresh_rotates_and_a_spent_token_revokes_its_family(make_user) -> None:
    alice = await make_user("alice")
    first = alice.refresh_token
    second = (await alice.refresh())["refresh_token"]
    assert second != first
    assert (await alice.me())["username"] == "alice"  # the new access token works

    with pytest.raises(ApiError) as reused:
        await alice.refresh(first)
    assert (reused.value.status, reused.value.code) == (401, "unauthenticated")
    # reuse of a spent token means a copy leaked: the live successor is revoked too
    with pytest.raises(ApiError) as revoked:
        await alice.refresh(second)
    assert revoked.value.status == 401


async def test_tokens_are_not_interchangeable_and_garbage_is_401(make_user, server) -> None:
    alice = await make_user("alice")
    as_refresh = Chat4AllClient(server.base_url, token=alice.refresh_token)
    with pytest.raises(ApiError) as wrong_kind:
        await as_refresh.me()
    assert wrong_kind.value.status == 401
    with pytest.raises(ApiError) as refresh_with_access:
        await alice.refresh(alice.access_token)
    assert refresh_with_access.value.status == 401
    for token in ("garbage", ""):
        with pytest.raises(ApiError) as bad:
            await Chat4AllClient(server.base_url, token=token or None).me()
        assert (bad.value.status, bad.value.code) == (401, "unauthenticated")
    await as_refresh.close()


@pytest.mark.settings(verify_channel_identities=False)  # the mapping's rules; proofs: test_identity_claims.py
async def test_me_lists_channel_mappings_which_can_be_set_replaced_and_removed(make_user) -> None:
    alice = await make_user("alice")
    assert (await alice.me())["channels"] == {}
    await alice.set_channel("telegram", "1001")
    await alice.set_channel("whatsapp", "+5511999990000")
    await alice.set_channel("telegram", "1002")
    assert (await alice.me())["channels"] == {"telegram": "1002", "whatsapp": "+5511999990000"}
    await alice.delete_channel("whatsapp")
    assert (await alice.me())["channels"] == {"telegram": "1002"}
    with pytest.raises(ApiError) as absent:
        await alice.delete_channel("whatsapp")
    assert absent.value.status == 404


@pytest.mark.settings(verify_channel_identities=False)  # the mapping's rules; proofs: test_identity_claims.py
async def test_unknown_channel_is_422_and_an_identity_belongs_to_one_user(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    with pytest.raises(ApiError) as unknown:
        await alice.set_channel("myspace", "x")
    assert (unknown.value.status, unknown.value.code) == (422, "unsupported_channel")
    assert "telegram" in unknown.value.details["supported"]

    await alice.set_channel("telegram", "1001")
    with pytest.raises(ApiError) as taken:
        await bob.set_channel("telegram", "1001")
    assert (taken.value.status, taken.value.code) == (409, "conflict")


@pytest.mark.settings(verify_channel_identities=False)  # the mapping's rules; proofs: test_identity_claims.py
async def test_phone_identities_are_one_e164_number_however_written(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    mapped = await alice.set_channel("whatsapp", "+1 (555) 000-2222")
    assert (mapped["external_id"], mapped["status"]) == ("+15550002222", "linked")
    assert (await alice.me())["channels"] == {"whatsapp": "+15550002222"}
    for spelling in ("+15550002222", "+1 555 000 2222", "0015550002222"):  # the same number: alice's
        with pytest.raises(ApiError) as taken:
            await bob.set_channel("whatsapp", spelling)
        assert (taken.value.status, taken.value.code) == (409, "conflict"), spelling
    for bad in ("555 000 2222", "+1", "+1555000222233334444", "call me"):  # no country code, too short, ...
        with pytest.raises(ApiError) as refused:
            await bob.set_channel("whatsapp", bad)
        assert refused.value.status == 422, bad
    assert (await bob.set_channel("instagram", " bob.insta "))["external_id"] == "bob.insta"  # not a phone channel
