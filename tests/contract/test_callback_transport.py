"""CallbackTransport (httpx): SSRF checks at every attempt, the checked address, no redirects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chat4all.adapters.webhook_http import HttpCallbackTransport
from chat4all.domain.egress import EgressPolicy, UrlNotAllowed
from chat4all.domain.errors import InvalidInput
from tests.e2e.processes import free_port
from tests.webhook_receiver import Receiver, running_receiver

LOOPBACK = EgressPolicy.parse(allow_private=False, allowed_networks="127.0.0.0/8,::1/128")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@pytest.fixture
async def transport() -> AsyncIterator[HttpCallbackTransport]:
    t = HttpCallbackTransport(LOOPBACK)
    await t.start()
    try:
        yield t
    finally:
        await t.close()


async def test_a_post_reaches_the_checked_address_with_the_name_in_host(
    transport: HttpCallbackTransport, receiver: Receiver
) -> None:
    url = receiver.url("/in?x=1").replace("127.0.0.1", "localhost")
    status, error = await transport.post(url, body=b'{"a":1}', headers={"X-Test": "1"}, timeout_s=5)

    assert (status, error) == (200, None)
    [call] = receiver.requests
    assert call.path == "/in" and call.body == b'{"a":1}'
    assert call.headers["host"] == url.split("/")[2]  # localhost:<port>
    assert call.headers["x-test"] == "1" and call.headers["content-type"] == "application/json"
    assert call.headers["user-agent"].startswith("Chat4All-Webhooks/")


async def test_answers_are_reported_as_they_are_and_redirects_are_not_followed(
    transport: HttpCallbackTransport, receiver: Receiver
) -> None:
    receiver.script = [302, 500, 404]
    for expected in (302, 500, 404):
        assert await transport.post(receiver.url(), body=b"{}", headers={}, timeout_s=5) == (expected, None)
    assert len(receiver.requests) == 3


async def test_no_answer_is_an_error_not_an_exception(transport: HttpCallbackTransport, receiver: Receiver) -> None:
    status, error = await transport.post(f"http://127.0.0.1:{free_port()}/", body=b"{}", headers={}, timeout_s=5)
    assert status is None and error and "ConnectError" in error

    receiver.hold = asyncio.Event()  # takes the request, never answers
    status, error = await transport.post(receiver.url(), body=b"{}", headers={}, timeout_s=0.3)
    assert (status, error) == (None, "timed out after 0.3 s")


async def test_the_policy_is_applied_again_at_every_attempt(receiver: Receiver) -> None:
    strict = HttpCallbackTransport(EgressPolicy())
    await strict.start()
    try:
        for url in (receiver.url(), receiver.url().replace("127.0.0.1", "localhost")):
            status, error = await strict.post(url, body=b"{}", headers={}, timeout_s=5)
            assert status is None and error is not None and error.startswith("refused: ") and "loopback" in error
            with pytest.raises(UrlNotAllowed):
                await strict.check(url)
    finally:
        await strict.close()
    assert receiver.requests == []


async def test_check_refuses_malformed_and_unresolvable_urls(transport: HttpCallbackTransport) -> None:
    with pytest.raises(InvalidInput) as malformed:
        await transport.check("gopher://example.com/")
    assert malformed.value.code == "validation_error"
    with pytest.raises(UrlNotAllowed) as unresolvable:
        await transport.check("http://nothing-here.invalid/")
    assert unresolvable.value.code == "url_not_allowed"
    await transport.check("http://[::1]:9/")  # allowed by the loopback policy
