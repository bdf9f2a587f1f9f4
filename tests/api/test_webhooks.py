"""Webhooks over real HTTP, to a real receiver on loopback (R6.5, R8.5; embedded profile)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from chat4all.client import ApiError, Chat4AllClient
from chat4all.config import Settings
from chat4all.domain.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER
from tests.conftest import persisted, start_server, wait_until
from tests.webhook_receiver import Receiver, running_receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # retries after 50, 100, 200 ms instead of 1, 2, 4 s; the embedded default allows loopback
    return settings.model_copy(
        update={
            "webhooks_retry_base_s": 0.05,
            "webhooks_poll_interval_s": 0.05,
            # the receiver listens on loopback, which no profile allows unless listed
            "webhooks_allowed_networks": "127.0.0.0/8,::1/128",
        }
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


async def register(client: Chat4AllClient, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url} if events is None else {"url": url, "events": events}
    return await client.request("POST", "/v1/webhooks", json=body, expect=(201,))


async def webhooks(client: Chat4AllClient) -> list[dict[str, Any]]:
    return (await client.request("GET", "/v1/webhooks"))["items"]


async def deliveries(client: Chat4AllClient, webhook_id: str, **params: Any) -> dict[str, Any]:
    return await client.request("GET", f"/v1/webhooks/{webhook_id}/deliveries", params=params)


async def test_a_read_message_yields_signed_sent_delivered_read_callbacks_in_order(pair, receiver: Receiver) -> None:
    alice, bob, conversation_id = pair
    hook = await register(alice, receiver.url())

    async with bob.websocket() as socket:
        sent = await alice.send_text(conversation_id, "track me")
        frame = await socket.receive()
        assert frame["type"] == "message"
        await socket.ack([sent["message_id"]])
        await socket.read([sent["message_id"]])
        calls = await wait_until(lambda: receiver.count(3), what="three callbacks")

    assert [c.json["data"]["status"] for c in calls] == ["SENT", "DELIVERED", "READ"]
    for call in calls:
        assert call.verifies(hook["secret"])
        assert not call.verifies("whsec_someone-else")
        assert call.headers["content-type"] == "application/json"
        assert call.headers[EVENT_ID_HEADER.lower()] == call.event_id
        assert set(call.json) == {"event_id", "type", "created_at", "data"}
        assert call.json["type"] == "message.status"
        assert call.json["data"] | {"at": None} == {
            "message_id": sent["message_id"],
            "conversation_id": conversation_id,
            "username": "bob",
            "channel": "internal",
            "status": call.json["data"]["status"],
            "at": None,
        }
    assert len({c.event_id for c in calls}) == 3
    timestamp, _, signature = calls[0].headers[SIGNATURE_HEADER.lower()].partition(",")
    assert timestamp.startswith("t=") and signature.startswith("v1=") and len(signature) == 3 + 64

    async def all_delivered() -> list[dict[str, Any]] | None:
        items = (await deliveries(alice, hook["webhook_id"]))["items"]
        return items if all(d["state"] == "delivered" for d in items) else None

    log = await wait_until(all_delivered, what="the deliveries to be recorded")
    assert [d["payload"]["data"]["status"] for d in log] == ["READ", "DELIVERED", "SENT"]  # each once
    assert [d["event_id"] for d in log] == [c.event_id for c in reversed(calls)]
    assert all(len(d["attempts"]) == 1 and d["attempts"][0]["status_code"] == 200 for d in log)


async def test_a_receiver_that_answers_500_twice_gets_the_event_on_the_third_try(pair, receiver: Receiver) -> None:
    alice, _, conversation_id = pair
    hook = await register(alice, receiver.url(), events=["message.status"])
    receiver.script = [500, 500]

    sent = await alice.send_text(conversation_id, "retry me")
    calls = await wait_until(lambda: receiver.count(3), what="three tries")

    assert [c.status for c in calls] == [500, 500, 200]
    assert {c.event_id for c in calls} == {calls[0].event_id}
    assert [c.headers["chat4all-delivery-attempt"] for c in calls] == ["1", "2", "3"]
    assert all(c.verifies(hook["secret"]) for c in calls)

    async def delivered() -> dict[str, Any] | None:
        items = (await deliveries(alice, hook["webhook_id"]))["items"]
        return items[0] if items and items[0]["state"] == "delivered" else None

    record = await wait_until(delivered, what="the delivery to be recorded")
    assert record["event_id"] == calls[0].event_id
    assert record["payload"]["data"]["message_id"] == sent["message_id"]
    assert [(a["attempt"], a["status_code"], a["error"]) for a in record["attempts"]] == [
        (1, 500, None),
        (2, 500, None),
        (3, 200, None),
    ]
    assert all(isinstance(a["latency_ms"], int) and a["latency_ms"] >= 0 for a in record["attempts"])
    assert record["attempts"][0]["at"] < record["attempts"][1]["at"] < record["attempts"][2]["at"]


async def test_a_callback_that_never_succeeds_fails_after_three_retries_and_the_next_one_still_goes(
    pair, receiver: Receiver
) -> None:
    alice, bob, conversation_id = pair
    hook = await register(alice, receiver.url())
    receiver.script = [503, 502, 500, 500]  # the SENT callback's four attempts

    sent = await alice.send_text(conversation_id, "doomed")
    await persisted(alice, sent["message_id"])
    await bob.ack([sent["message_id"]])
    calls = await wait_until(lambda: receiver.count(5), what="four tries of SENT, then DELIVERED")

    assert [(c.json["data"]["status"], c.status) for c in calls] == [
        ("SENT", 503), ("SENT", 502), ("SENT", 500), ("SENT", 500), ("DELIVERED", 200)
    ]
    items = (await deliveries(alice, hook["webhook_id"]))["items"]
    by_status = {d["payload"]["data"]["status"]: d for d in items}
    assert by_status["SENT"]["state"] == "failed" and by_status["SENT"]["last_error"] == "HTTP 500"
    assert [a["status_code"] for a in by_status["SENT"]["attempts"]] == [503, 502, 500, 500]


async def test_the_secret_is_shown_once_and_the_events_filter_is_kept(make_user, receiver: Receiver) -> None:
    alice = await make_user("alice")
    created = await register(alice, receiver.url())
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["events"] == ["*"] and created["status"] == "active"
    filtered = await register(alice, receiver.url("/files"), events=["file.completed", "file.completed"])
    assert filtered["events"] == ["file.completed"]

    listed = await webhooks(alice)
    assert [w["webhook_id"] for w in listed] == [created["webhook_id"], filtered["webhook_id"]]
    assert all("secret" not in w for w in listed)
    assert listed[0] == {k: v for k, v in created.items() if k != "secret"}


async def test_only_subscribed_events_are_sent(pair, receiver: Receiver) -> None:
    alice, bob, conversation_id = pair
    await register(alice, receiver.url("/files-only"), events=["file.completed"])
    await register(alice, receiver.url("/status"), events=["message.status"])

    sent = await alice.send_text(conversation_id, "status only")
    await wait_until(lambda: receiver.count(1, "/status"), what="the status callback")
    await bob.ack([sent["message_id"]])
    await wait_until(lambda: receiver.count(2, "/status"), what="the DELIVERED callback")
    assert receiver.to("/files-only") == []


async def test_deleting_a_webhook_stops_delivery(pair, receiver: Receiver) -> None:
    alice, bob, conversation_id = pair
    doomed = await register(alice, receiver.url("/doomed"))
    await register(alice, receiver.url("/kept"))  # a witness: what it gets, the deleted one would have got
    first = await alice.send_text(conversation_id, "before")
    await wait_until(lambda: receiver.count(1, "/doomed"), what="the first callback")

    await alice.request("DELETE", f"/v1/webhooks/{doomed['webhook_id']}", expect=(204,))

    await bob.ack([first["message_id"]])
    second = await alice.send_text(conversation_id, "after")
    kept = await wait_until(lambda: receiver.count(3, "/kept"), what="the witness's callbacks")
    assert {(c.json["data"]["message_id"], c.json["data"]["status"]) for c in kept} == {
        (first["message_id"], "SENT"), (first["message_id"], "DELIVERED"), (second["message_id"], "SENT")
    }
    assert [c.json["data"]["status"] for c in receiver.to("/doomed")] == ["SENT"]
    assert [w["url"] for w in await webhooks(alice)] == [receiver.url("/kept")]
    for method, path in (("DELETE", ""), ("GET", "/deliveries")):
        with pytest.raises(ApiError) as gone:
            await alice.request(method, f"/v1/webhooks/{doomed['webhook_id']}{path}")
        assert (gone.value.status, gone.value.code) == (404, "not_found")


async def test_someone_elses_webhook_is_not_found(pair, receiver: Receiver) -> None:
    alice, bob, _ = pair
    hook = await register(alice, receiver.url())
    for method, path in (("DELETE", ""), ("GET", "/deliveries")):
        with pytest.raises(ApiError) as hidden:
            await bob.request(method, f"/v1/webhooks/{hook['webhook_id']}{path}")
        assert (hidden.value.status, hidden.value.code) == (404, "not_found")
    assert await webhooks(bob) == []
    assert len(await webhooks(alice)) == 1
    with pytest.raises(ApiError) as garbage:
        await alice.request("GET", "/v1/webhooks/not-a-uuid/deliveries")
    assert garbage.value.status == 404


async def test_bobs_webhook_gets_nothing_about_alices_messages(pair, receiver: Receiver) -> None:
    alice, bob, conversation_id = pair
    await register(bob, receiver.url("/bob"))
    await register(alice, receiver.url("/alice"))
    sent = await alice.send_text(conversation_id, "mine")
    await wait_until(lambda: receiver.count(1, "/alice"), what="alice's callback")
    await bob.ack([sent["message_id"]])
    await wait_until(lambda: receiver.count(2, "/alice"), what="alice's DELIVERED callback")
    assert receiver.to("/bob") == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.com/hook"}, "validation_error"),
        ({"url": "not a url"}, "validation_error"),
        ({"url": "http:///no-host"}, "validation_error"),
        ({"url": "https://user:secret@example.com/hook"}, "validation_error"),
        ({"url": "http://example.com:99999/"}, "validation_error"),
        ({"url": ""}, "validation_error"),
        ({"url": "https://example.com/" + "x" * 2048}, "validation_error"),
        ({"url": "https://example.com/hook", "events": ["message.exploded"]}, "validation_error"),
        ({"url": "https://example.com/hook", "events": []}, "validation_error"),
        ({"url": "https://example.com/hook", "surprise": 1}, "validation_error"),
        ({"events": ["*"]}, "validation_error"),
        ({"url": "http://10.1.2.3/hook"}, "url_not_allowed"),
        ({"url": "http://192.168.0.10:8080/hook"}, "url_not_allowed"),
        ({"url": "http://172.16.5.4/"}, "url_not_allowed"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url_not_allowed"),
        ({"url": "http://[fd00:ec2::254]/"}, "url_not_allowed"),
        ({"url": "http://[::ffff:10.0.0.1]/"}, "url_not_allowed"),
        ({"url": "http://0.0.0.0:9000/"}, "url_not_allowed"),
        ({"url": "http://100.64.0.1/"}, "url_not_allowed"),
        ({"url": "http://no-such-host.invalid/hook"}, "url_not_allowed"),
    ],
)
async def test_bad_or_private_urls_are_refused_with_a_4xx(make_user, body: dict[str, Any], code: str) -> None:
    alice = await make_user("alice")
    with pytest.raises(ApiError) as refused:
        await alice.request("POST", "/v1/webhooks", json=body, expect=(201,))
    assert (refused.value.status, refused.value.code) == (422, code)
    assert await webhooks(alice) == []


async def test_too_many_webhooks_are_refused(make_user, receiver: Receiver) -> None:
    alice = await make_user("alice")
    for i in range(10):
        await register(alice, receiver.url(f"/{i}"))
    with pytest.raises(ApiError) as refused:
        await register(alice, receiver.url("/11"))
    assert (refused.value.status, refused.value.code) == (422, "webhook_limit_reached")


async def test_an_endpoint_failing_for_consecutive_events_is_disabled_and_says_so(settings: Settings) -> None:
    strict = settings.model_copy(update={"webhooks_max_retries": 0, "webhooks_disable_after": 2})
    running, uv, task = await start_server(strict)
    try:
        async with running_receiver() as receiver, Chat4AllClient(running.base_url) as alice, Chat4AllClient(
            running.base_url
        ) as bob:
            for client, name in ((alice, "alice"), (bob, "bob")):
                await client.register(name, "correct-horse-battery")
                await client.login(name, "correct-horse-battery")
            conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
            receiver.default = 500
            hook = await register(alice, receiver.url())
            first = await alice.send_text(conversation_id, "one")
            await wait_until(lambda: receiver.count(1), what="the first failure")
            await alice.send_text(conversation_id, "two")

            async def disabled() -> dict[str, Any] | None:
                [listed] = await webhooks(alice)
                return listed if listed["status"] == "disabled" else None

            listed = await wait_until(disabled, what="the webhook to be disabled")
            assert "2 consecutive failed callbacks" in listed["disabled_reason"]
            assert "HTTP 500" in listed["disabled_reason"] and listed["disabled_at"]
            await bob.ack([first["message_id"]])  # a status change after the disable
            third = await alice.send_text(conversation_id, "three")
            await persisted(alice, third["message_id"])
            states = [d["state"] for d in (await deliveries(alice, hook["webhook_id"]))["items"]]
            assert states.count("failed") == 2 and set(states) <= {"failed", "cancelled"}
            assert len(receiver.requests) == 2
    finally:
        uv.should_exit = True
        await task


async def test_loopback_is_refused_unless_allowed(settings: Settings) -> None:
    policies = {
        "default": ({"webhooks_allowed_networks": None}, {"http://127.0.0.1:9/", "http://localhost:9/", "http://10.0.0.1/", "http://[::1]:9/"}, set()),
        "production default": ({"webhooks_allowed_networks": ""}, {"http://127.0.0.1:9/", "http://localhost:9/", "http://10.0.0.1/"}, set()),
        # IPv6 forms that carry a forbidden IPv4 address: 6to4, Teredo, NAT64
        "embedded IPv4": (
            {"webhooks_allowed_networks": None},
            {"http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::1]/", "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::a00:1]/"},
            {"http://[2002:808:808::1]/"},
        ),
        "allow private": ({"webhooks_allowed_networks": "", "webhooks_allow_private": True}, {"http://169.254.169.254/"}, {"http://127.0.0.1:9/", "http://10.0.0.1/", "http://[::1]:9/"}),
        "allow a network": ({"webhooks_allowed_networks": "10.9.0.0/16"}, {"http://10.8.0.1/", "http://127.0.0.1:9/"}, {"http://10.9.3.4/"}),
    }
    for n, (name, (update, refused, accepted)) in enumerate(policies.items()):
        running, uv, task = await start_server(settings.model_copy(update=update))
        try:
            async with Chat4AllClient(running.base_url) as alice:
                await alice.register(f"u-{n}", "correct-horse-battery")
                await alice.login(f"u-{n}", "correct-horse-battery")
                for url in refused:
                    with pytest.raises(ApiError) as no:
                        await register(alice, url)
                    assert (no.value.status, no.value.code) == (422, "url_not_allowed"), (name, url)
                for url in accepted:
                    assert (await register(alice, url))["url"] == url, (name, url)
        finally:
            uv.should_exit = True
            await task


async def test_deliveries_page_newest_first(pair, receiver: Receiver) -> None:
    alice, _, conversation_id = pair
    hook = await register(alice, receiver.url())
    sent = [await alice.send_text(conversation_id, f"m{i}") for i in range(3)]
    await wait_until(lambda: receiver.count(3), what="three callbacks")
    page = await deliveries(alice, hook["webhook_id"], limit=2)
    assert [d["payload"]["data"]["message_id"] for d in page["items"]] == [sent[2]["message_id"], sent[1]["message_id"]]
    rest = await deliveries(alice, hook["webhook_id"], limit=2, cursor=page["next_cursor"])
    assert [d["payload"]["data"]["message_id"] for d in rest["items"]] == [sent[0]["message_id"]]
    assert rest["next_cursor"] is None
    with pytest.raises(ApiError) as bad:
        await deliveries(alice, hook["webhook_id"], cursor="x")
    assert (bad.value.status, bad.value.code) == (422, "validation_error")


async def test_the_webhooks_are_in_the_openapi_document(server) -> None:
    async with Chat4AllClient(server.base_url) as anonymous:
        paths = (await anonymous.request("GET", "/openapi.json"))["paths"]
    assert {"post", "get"} <= set(paths["/v1/webhooks"])
    assert "delete" in paths["/v1/webhooks/{webhook_id}"]
    assert "get" in paths["/v1/webhooks/{webhook_id}/deliveries"]
