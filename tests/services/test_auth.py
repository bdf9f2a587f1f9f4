"""AuthService on a fake metadata store, with the clock in the test's hands: token expiry, the
refresh-reuse grace window and the revocation check interval, all without sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from chat4all.domain.errors import Unauthenticated
from chat4all.services.auth import AuthService
from tests.fakes.clock import FakeClock
from tests.fakes.users import FakeMetadataStore

ACCESS_TTL_S = 900
GRACE_S = 10.0
REVOCATION_CHECK_S = 2.0


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
def auth(metadata: FakeMetadataStore, clock: FakeClock, monotonic: Monotonic) -> AuthService:
    return AuthService(
        metadata=metadata,
        secret="s" * 32,
        access_ttl_s=ACCESS_TTL_S,
        refresh_ttl_s=3600,
        bcrypt_rounds=4,
        revocation_check_s=REVOCATION_CHECK_S,
        refresh_reuse_grace_s=GRACE_S,
        clock=clock,
        monotonic=monotonic,
    )


async def access_tokens(auth: AuthService, *names: str) -> list[str]:
    """Signs these users up and in; their access tokens, in order."""
    tokens = []
    for name in names:
        await auth.register(username=name, password="correct horse")
        tokens.append((await auth.login(username=name, password="correct horse")).access_token)
    return tokens


def count_revocation_reads(metadata: FakeMetadataStore, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """From now on, each revocation read of the store is recorded (the families it asked for)."""
    reads: list[list[str]] = []
    read = metadata.revoked_refresh_families

    async def counted(family_ids: Sequence[str]) -> set[str]:
        reads.append(list(family_ids))
        return await read(family_ids)

    monkeypatch.setattr(metadata, "revoked_refresh_families", counted)
    return reads


async def signed_up(auth: AuthService) -> tuple[str, str]:
    await auth.register(username="alice", password="correct horse")
    pair = await auth.login(username="alice", password="correct horse")
    return pair.access_token, pair.refresh_token


async def test_an_access_token_works_until_its_expiry_on_the_services_clock(auth: AuthService, clock: FakeClock) -> None:
    access, _ = await signed_up(auth)
    assert await auth.authenticate(access) == "alice"

    clock.advance(ACCESS_TTL_S - 1)
    assert await auth.authenticate(access) == "alice"  # remembered, and still valid

    clock.advance(1)
    with pytest.raises(Unauthenticated, match="expired"):
        await auth.authenticate(access)


async def test_a_refresh_reused_within_the_grace_window_gets_the_same_pair_back(
    auth: AuthService, clock: FakeClock
) -> None:
    _, refresh = await signed_up(auth)
    clock.advance(60)
    first = await auth.refresh(refresh_token=refresh)

    clock.advance(GRACE_S)
    again = await auth.refresh(refresh_token=refresh)

    assert again == first
    assert await auth.authenticate(first.access_token) == "alice"


async def test_a_refresh_reused_after_the_grace_window_revokes_the_whole_session(
    auth: AuthService, clock: FakeClock, monotonic: Monotonic
) -> None:
    _, refresh = await signed_up(auth)
    first = await auth.refresh(refresh_token=refresh)

    clock.advance(GRACE_S + 1)
    with pytest.raises(Unauthenticated):
        await auth.refresh(refresh_token=refresh)

    with pytest.raises(Unauthenticated, match="session has ended"):
        await auth.authenticate(first.access_token)
    with pytest.raises(Unauthenticated):
        await auth.refresh(refresh_token=first.refresh_token)


async def test_a_revocation_elsewhere_is_seen_once_the_check_interval_has_passed(
    auth: AuthService, metadata: FakeMetadataStore, monotonic: Monotonic
) -> None:
    access, _ = await signed_up(auth)
    session = await auth.session(access)
    await metadata.revoke_refresh_family(session.family_id)  # another node's logout

    monotonic.now += REVOCATION_CHECK_S - 0.5
    assert await auth.authenticate(access) == "alice"  # the last check is still trusted

    monotonic.now += 0.5
    with pytest.raises(Unauthenticated, match="session has ended"):
        await auth.authenticate(access)


async def test_sessions_due_for_a_check_together_are_checked_in_one_store_read(
    auth: AuthService, metadata: FakeMetadataStore, monotonic: Monotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = await access_tokens(auth, "alice", "bob", "carol", "dave", "erin")
    revoked = (await auth.session(tokens[2])).family_id
    await metadata.revoke_refresh_family(revoked)
    reads = count_revocation_reads(metadata, monkeypatch)
    monotonic.now += REVOCATION_CHECK_S

    outcomes = await asyncio.gather(*(auth.authenticate(t) for t in tokens), return_exceptions=True)

    assert len(reads) == 1 and len(set(reads[0])) == 5
    assert [o if isinstance(o, str) else type(o) for o in outcomes] == ["alice", "bob", Unauthenticated, "dave", "erin"]


async def test_sessions_checked_at_different_times_fall_due_together(
    auth: AuthService, metadata: FakeMetadataStore, monotonic: Monotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = await access_tokens(auth, "alice", "bob", "carol", "dave")
    reads = count_revocation_reads(metadata, monkeypatch)
    start = monotonic.now
    for token, at in zip(tokens, (0.0, 0.1, 0.3, 0.45), strict=True):  # first checks, spread over the period
        monotonic.now = start + at * REVOCATION_CHECK_S
        await auth.authenticate(token)
    assert len(reads) == 4
    carol = (await auth.session(tokens[2])).family_id
    await metadata.revoke_refresh_family(carol)  # another node's logout

    monotonic.now = start + REVOCATION_CHECK_S  # alice's check is due: the others come along
    assert await auth.authenticate(tokens[0]) == "alice"
    assert len(reads) == 5 and len(set(reads[4])) == 4
    with pytest.raises(Unauthenticated, match="session has ended"):  # seen in that read
        await auth.authenticate(tokens[2])

    monotonic.now = start + 1.45 * REVOCATION_CHECK_S  # each would have been due on its own by now
    assert [await auth.authenticate(t) for t in (tokens[0], tokens[1], tokens[3])] == ["alice", "bob", "dave"]
    assert len(reads) == 5


async def test_a_logout_here_is_seen_at_once(auth: AuthService) -> None:
    access, _ = await signed_up(auth)

    await auth.logout(session=await auth.session(access))

    with pytest.raises(Unauthenticated, match="session has ended"):
        await auth.authenticate(access)
