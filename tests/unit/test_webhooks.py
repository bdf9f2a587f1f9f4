"""Webhook rules without I/O: signatures, event ids, SSRF policy, and status callbacks in order."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from chat4all.domain.egress import EgressPolicy, address_kind, parse_url
from chat4all.domain.errors import InvalidInput
from chat4all.domain.events import FileEvent, StatusEvent
from chat4all.domain.models import StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.domain.webhooks import (
    Webhook,
    callback_body,
    normalize_events,
    retry_delay_s,
    sign,
    status_event_id,
    verify,
)
from chat4all.ports import Callback
from chat4all.services.webhook_callbacks import FileCallbacks, StatusCallbacks

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_test-secret"


# signature ---------------------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    body = b'{"event_id":"e1"}'
    header = sign(SECRET, body, timestamp=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_verify_accepts_the_right_secret_and_body_only_within_the_tolerance() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body, timestamp=1000)
    assert verify(SECRET, body, header, now=1000)
    assert verify(SECRET, body, header, now=1299)
    assert not verify(SECRET, body, header, now=1301)  # a replay, too old
    assert not verify("whsec_other", body, header, now=1000)
    assert not verify(SECRET, b'{"a":2}', header, now=1000)
    assert not verify(SECRET, body, "v1=abc", now=1000)
    assert not verify(SECRET, body, "t=x,v1=abc", now=1000)
    rotated = f"{header},v1={'0' * 64}"  # several v1 values: any may match
    assert verify(SECRET, body, rotated, now=1000)


def test_event_ids_are_deterministic_per_delivery_and_status() -> None:
    one = status_event_id("m1", "bob", "internal", DeliveryStatus.SENT)
    assert one == status_event_id("m1", "bob", "internal", "SENT")
    assert len({one, status_event_id("m1", "bob", "internal", "READ"), status_event_id("m1", "carol", "internal", "SENT"),
                status_event_id("m1", "bob", "telegram", "SENT"), status_event_id("m2", "bob", "internal", "SENT")}) == 5


def test_normalize_events() -> None:
    assert normalize_events(None) == ("*",)
    assert normalize_events(["message.status", "message.status"]) == ("message.status",)
    assert normalize_events(["file.completed", "*"]) == ("*",)
    # API v2's events are known types now
    assert normalize_events(["message.updated", "message.deleted", "conversation.updated"]) == (
        "message.updated", "message.deleted", "conversation.updated"
    )
    for bad in ([], ["message.exploded"]):
        with pytest.raises(ValueError):
            normalize_events(bad)


def test_retries_back_off_exponentially() -> None:
    assert [retry_delay_s(n, base_s=1.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


# SSRF policy -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.31.255.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.64.0.1", "shared"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_the_policy_refuses_non_public_addresses_unless_allowed() -> None:
    ip = ipaddress.ip_address
    strict = EgressPolicy()
    assert strict.refusal(ip("8.8.8.8")) is None
    assert strict.refusal(ip("127.0.0.1")) == "loopback"
    assert strict.refusal(ip("::ffff:10.0.0.1")) == "private"  # IPv4-mapped IPv6 is unwrapped

    loopback = EgressPolicy.parse(allow_private=False, allowed_networks="127.0.0.0/8, ::1/128")
    assert loopback.refusal(ip("127.0.0.1")) is None and loopback.refusal(ip("::1")) is None
    assert loopback.refusal(ip("10.0.0.1")) == "private"

    private = EgressPolicy.parse(allow_private=True)
    assert private.refusal(ip("10.0.0.1")) is None and private.refusal(ip("fe80::1")) is None
    assert private.refusal(ip("169.254.169.254")) == "metadata"  # only an explicit network allows it

    with pytest.raises(ValueError):
        EgressPolicy.parse(allow_private=False, allowed_networks="not-a-network")


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("2002:7f00:1::", "loopback (6to4)"),
        ("2002:a9fe:a9fe::1", "metadata (6to4)"),
        ("2002:0a00:0001::", "private (6to4)"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback (teredo)"),  # client 127.0.0.1, obfuscated
        ("64:ff9b::7f00:1", "loopback (nat64)"),
        ("64:ff9b::a9fe:a9fe", "metadata (nat64)"),
        ("64:ff9b:1::c0a8:1", "private (nat64)"),
        ("2002:808:808::1", None),  # 6to4 of a public address
        ("64:ff9b::808:808", "reserved"),  # NAT64 of a public address: still a reserved range
    ],
)
def test_ipv6_forms_carrying_a_forbidden_ipv4_are_refused(address: str, refusal: str | None) -> None:
    assert EgressPolicy().refusal(ipaddress.ip_address(address)) == refusal


def test_an_embedded_loopback_is_allowed_only_when_loopback_is_listed() -> None:
    loopback = EgressPolicy.parse(allow_private=False, allowed_networks="127.0.0.0/8")
    assert loopback.refusal(ipaddress.ip_address("2002:7f00:1::")) is None


def test_parse_url() -> None:
    target = parse_url(" https://Example.com:8443/a/b?x=1 ")
    assert (target.scheme, target.host, target.port, target.target) == ("https", "example.com", 8443, "/a/b?x=1")
    assert parse_url("http://[::1]/").host == "::1"
    assert parse_url("http://example.com").target == "/"
    for bad in ("ftp://x/", "//x/", "http://", "http://u:p@x/", "http://x/#frag", "http://x:0x/", "x" * 3000):
        with pytest.raises(InvalidInput):
            parse_url(bad)


# status callbacks --------------------------------------------------------------------------------


class FakeOutbox:
    def __init__(self, known: set[tuple[str, str]] = frozenset()) -> None:  # type: ignore[assignment]
        self._known = set(known)

    async def known(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return self._known & set(keys)


class FakeMessages:
    def __init__(self, history: list[StatusChange]) -> None:
        self._history = history
        self.reads = 0

    async def history(self, message_id: str) -> list[StatusChange]:
        self.reads += 1
        return [h for h in self._history if h.message_id == message_id]


def hook(owner: str = "alice", *, events: tuple[str, ...] = ("*",), created_at: datetime = T0) -> Webhook:
    return Webhook(webhook_id=f"h-{owner}", owner=owner, url="https://x/", events=events, secret=SECRET, created_at=created_at)


def status_event(status: DeliveryStatus, *, at: datetime, username: str = "bob", message_id: str = "m1") -> StatusEvent:
    return StatusEvent(
        message_id=message_id, conversation_id="c1", sender="alice", username=username, channel="internal", status=status, at=at
    )


def change(status: DeliveryStatus, at: datetime, username: str = "bob") -> StatusChange:
    return StatusChange(message_id="m1", username=username, channel="internal", status=status, at=at)


def statuses(callbacks: list[Callback]) -> list[tuple[str, str]]:
    return [(orjson.loads(c.body)["data"]["username"], orjson.loads(c.body)["data"]["status"]) for c in callbacks]


SENT, DELIVERED, READ = DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ


async def test_a_status_event_becomes_one_signed_body_per_subscribed_webhook() -> None:
    source = StatusCallbacks(messages=FakeMessages([]), outbox=FakeOutbox())  # type: ignore[arg-type]
    event = status_event(SENT, at=T0 + timedelta(seconds=1))
    webhooks = {"alice": [hook(), hook(events=("file.completed",)).model_copy(update={"webhook_id": "h-files"})]}

    [callback] = await source.callbacks([event], webhooks)

    assert (callback.webhook_id, callback.owner, callback.subject_id, callback.type) == ("h-alice", "alice", "m1", "message.status")
    assert callback.event_id == status_event_id("m1", "bob", "internal", SENT)
    assert callback.body == callback_body(
        event_id=callback.event_id,
        event_type="message.status",
        created_at=event.at,
        data={"message_id": "m1", "conversation_id": "c1", "username": "bob", "channel": "internal",
              "status": "SENT", "at": event.at.isoformat()},
    )


async def test_a_delivered_that_overtook_its_sent_is_preceded_by_the_sent_from_the_history() -> None:
    sent_at, delivered_at = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    messages = FakeMessages([change(SENT, sent_at), change(SENT, sent_at, "carol"), change(DELIVERED, delivered_at)])
    source = StatusCallbacks(messages=messages, outbox=FakeOutbox())  # type: ignore[arg-type]

    callbacks = await source.callbacks([status_event(DELIVERED, at=delivered_at)], {"alice": [hook()]})

    assert statuses(callbacks) == [("bob", "SENT"), ("bob", "DELIVERED")]
    assert orjson.loads(callbacks[0].body)["data"]["at"] == sent_at.isoformat()
    # the late SENT event itself then yields the same event_id: a duplicate the outbox ignores
    late = await source.callbacks([status_event(SENT, at=sent_at)], {"alice": [hook()]})
    assert late[0].event_id == callbacks[0].event_id


async def test_a_batch_with_a_delivered_before_its_sent_still_yields_them_in_order() -> None:
    sent_at, delivered_at = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    messages = FakeMessages([change(SENT, sent_at), change(DELIVERED, delivered_at)])
    source = StatusCallbacks(messages=messages, outbox=FakeOutbox())  # type: ignore[arg-type]

    batch = [status_event(DELIVERED, at=delivered_at), status_event(SENT, at=sent_at)]
    callbacks = await source.callbacks(batch, {"alice": [hook()]})

    assert statuses(callbacks) == [("bob", "SENT"), ("bob", "DELIVERED")]
    assert messages.reads == 1


async def test_no_history_is_read_when_the_earlier_steps_are_known_or_in_the_same_batch() -> None:
    h = hook()
    messages = FakeMessages([])
    known = {(h.webhook_id, status_event_id("m1", "bob", "internal", SENT))}
    source = StatusCallbacks(messages=messages, outbox=FakeOutbox(known))  # type: ignore[arg-type]

    assert statuses(await source.callbacks([status_event(DELIVERED, at=T0)], {"alice": [h]})) == [("bob", "DELIVERED")]
    batch = [status_event(SENT, at=T0, username="carol"), status_event(DELIVERED, at=T0, username="carol")]
    assert statuses(await source.callbacks(batch, {"alice": [h]})) == [("carol", "SENT"), ("carol", "DELIVERED")]
    assert messages.reads == 0


async def test_a_read_fills_in_what_is_missing_but_not_what_happened_before_the_webhook_existed() -> None:
    created = T0 + timedelta(seconds=5)
    messages = FakeMessages([change(SENT, T0), change(DELIVERED, created + timedelta(seconds=1)),
                             change(READ, created + timedelta(seconds=2))])
    source = StatusCallbacks(messages=messages, outbox=FakeOutbox())  # type: ignore[arg-type]

    callbacks = await source.callbacks(
        [status_event(READ, at=created + timedelta(seconds=2))], {"alice": [hook(created_at=created)]}
    )

    assert statuses(callbacks) == [("bob", "DELIVERED"), ("bob", "READ")]


async def test_disabled_or_unsubscribed_webhooks_get_nothing() -> None:
    source = StatusCallbacks(messages=FakeMessages([]), outbox=FakeOutbox())  # type: ignore[arg-type]
    disabled = hook().model_copy(update={"disabled_at": T0, "disabled_reason": "x"})
    assert await source.callbacks([status_event(SENT, at=T0)], {"alice": [disabled]}) == []
    assert await source.callbacks([status_event(SENT, at=T0)], {"alice": [hook(events=("file.completed",))]}) == []
    assert await source.callbacks([status_event(SENT, at=T0)], {"bob": [hook("bob")]}) == []


async def test_a_file_event_becomes_a_file_completed_callback_for_the_owner() -> None:
    event = FileEvent(file_id="f1", owner="alice", filename="a.txt", size=3, content_type="text/plain", sha256="ab" * 32, at=T0)
    source = FileCallbacks()
    assert source.owner(source.decode(event.encode())) == "alice"

    [callback] = await source.callbacks([event], {"alice": [hook(), hook(events=("message.status",))]})

    body = orjson.loads(callback.body)
    assert (body["type"], callback.subject_id) == ("file.completed", "f1")
    assert body["data"] == {"file_id": "f1", "filename": "a.txt", "size": 3, "content_type": "text/plain",
                            "sha256": "ab" * 32, "status": "completed", "at": T0.isoformat()}
