"""Files over the real API (R5), on both blob stores: the local disk and S3 (SeaweedFS).

Bytes go the way a client sends them: plain HTTP, no token, to the URLs the API hands out.
The local disk runs with 1.5 MiB parts (more than the 1 MiB JSON body limit, which must not
apply to parts); S3 with its minimum of 5 MiB.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from chat4all.cli import app as cli
from chat4all.client import ApiError, Chat4AllClient
from chat4all.config import Settings
from chat4all.domain.events import FileEvent
from chat4all.domain.files import GiB, MiB
from tests.conftest import RunningServer, persisted, start_server, wait_until
from tests.s3 import purge, s3_test_url

LOCAL_PART = 3 * MiB // 2


@pytest.fixture(params=["localfs", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Settings:
    """Replaces the suite's settings: the same server, with one blob store or the other."""
    if backend == "s3":
        blob = {"blob_url": s3_test_url(), "file_part_bytes": 5 * MiB}
    else:
        blob = {"blob_url": f"file://{tmp_path}/files", "file_part_bytes": LOCAL_PART}
    return Settings(
        data_dir=tmp_path / "data",
        bcrypt_rounds=4,
        access_log=False,
        node_id="test-node",
        router_poll_interval_s=0.05,
        **blob,
    )


@pytest.fixture(autouse=True)
async def _purge_s3(settings: Settings, backend: str) -> AsyncIterator[None]:
    yield
    if backend == "s3":
        await purge(settings.resolved_blob_url)


@pytest.fixture
def part_size(settings: Settings, backend: str) -> int:
    return max(settings.file_part_bytes, 5 * MiB if backend == "s3" else 0)


@pytest.fixture
async def plain() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with no token, as a browser or curl following a URL would be."""
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


def content(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def piece(data: bytes, part_size: int, part_number: int) -> bytes:
    return data[(part_number - 1) * part_size : part_number * part_size]


async def put_parts(plain: httpx.AsyncClient, parts: list[dict[str, Any]], data: bytes, part_size: int) -> None:
    responses = await asyncio.gather(
        *(plain.put(p["url"], content=piece(data, part_size, p["part_number"])) for p in parts)
    )
    assert [r.status_code for r in responses] == [200] * len(parts), [r.text for r in responses]


async def upload(
    client: Chat4AllClient, plain: httpx.AsyncClient, data: bytes, name: str = "clip.mp4"
) -> dict[str, Any]:
    """Initiate, PUT every part, complete: the completed file's metadata."""
    ticket = await client.initiate_upload(name, len(data), content_type="video/mp4")
    await put_parts(plain, ticket["parts"], data, ticket["part_size"])
    return await client.complete_upload(ticket["file_id"], sha(data))


async def api_error(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    return caught.value


# uploading -------------------------------------------------------------------------------------


async def test_a_small_file_is_one_part_then_verified_and_downloadable_with_ranges(make_user, plain) -> None:
    alice = await make_user("alice")
    data = content(1000)
    ticket = await alice.initiate_upload("notes é.txt", len(data), content_type="text/plain", sha256=sha(data).upper())
    assert len(ticket["parts"]) == 1 and ticket["parts"][0]["part_number"] == 1
    assert ticket["parts"][0]["url"].startswith("http")  # absolute
    await put_parts(plain, ticket["parts"], data, ticket["part_size"])

    done = await alice.complete_upload(ticket["file_id"], sha(data))
    assert done["status"] == "completed" and done["sha256"] == sha(data) and done["size"] == 1000
    assert done["filename"] == "notes é.txt" and done["content_type"] == "text/plain"

    described = await alice.get_file(ticket["file_id"])
    assert described["download_url"].startswith("http") and described["download_expires_at"]
    whole = await plain.get(described["download_url"])
    assert whole.status_code == 200 and whole.content == data
    assert "attachment" in whole.headers["content-disposition"]
    ranged = await plain.get(described["download_url"], headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == data[100:200]

    state = await alice.upload_state(ticket["file_id"])
    assert state["status"] == "completed" and state["missing_parts"] == []
    assert state["uploaded_parts"] == [{"part_number": 1, "size": 1000}]
    # completing again with the same digest is harmless
    assert (await alice.complete_upload(ticket["file_id"], sha(data)))["status"] == "completed"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("page.html", "text/html; charset=utf-8"), ("logo.svg", "image/svg+xml"), ("feed.xml", "application/xml")],
)
async def test_active_types_download_as_bytes_that_nothing_renders(
    make_user, plain, backend, name: str, content_type: str
) -> None:
    alice = await make_user("alice")
    data = b"<html><script>alert(document.cookie)</script></html>"
    ticket = await alice.initiate_upload(name, len(data), content_type=content_type)
    await put_parts(plain, ticket["parts"], data, ticket["part_size"])
    await alice.complete_upload(ticket["file_id"], sha(data))
    got = await plain.get((await alice.get_file(ticket["file_id"]))["download_url"])
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment")
    if backend == "localfs":  # the app serves these itself; S3 answers with its own headers
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-security-policy"].startswith("sandbox")


async def test_passive_types_keep_their_type_and_are_not_sniffed(make_user, plain, backend) -> None:
    alice = await make_user("alice")
    data = content(500)
    ticket = await alice.initiate_upload("photo.png", len(data), content_type="image/png")
    await put_parts(plain, ticket["parts"], data, ticket["part_size"])
    await alice.complete_upload(ticket["file_id"], sha(data))
    got = await plain.get((await alice.get_file(ticket["file_id"]))["download_url"])
    assert got.headers["content-type"] == "image/png"
    if backend == "localfs":
        assert got.headers["x-content-type-options"] == "nosniff"


async def test_a_multi_part_file_is_cut_by_the_server_joined_and_verified(make_user, plain, part_size) -> None:
    alice = await make_user("alice")
    data = content(2 * part_size + 12345)
    ticket = await alice.initiate_upload("big.bin", len(data))
    assert ticket["part_size"] == part_size
    assert [p["part_number"] for p in ticket["parts"]] == [1, 2, 3]
    await put_parts(plain, ticket["parts"], data, part_size)
    done = await alice.complete_upload(ticket["file_id"], sha(data))
    assert done["status"] == "completed" and done["content_type"] == "application/octet-stream"
    downloaded = await plain.get(done["download_url"])
    assert sha(downloaded.content) == sha(data)


async def test_an_interrupted_upload_resumes_from_its_upload_state(make_user, plain, part_size) -> None:
    alice = await make_user("alice")
    data = content(2 * part_size + 777)
    ticket = await alice.initiate_upload("flaky.bin", len(data), sha256=sha(data))
    first, second, third = ticket["parts"]
    await put_parts(plain, [first, third], data, part_size)

    async def half_then_break() -> AsyncIterator[bytes]:
        yield piece(data, part_size, 2)[: part_size // 2]
        raise ConnectionResetError("the link dropped")

    with pytest.raises((ConnectionResetError, httpx.HTTPError)):
        await plain.put(second["url"], content=half_then_break(), headers={"Content-Length": str(part_size)})

    state = await alice.upload_state(ticket["file_id"])
    assert state["status"] == "uploading" and state["part_size"] == part_size
    assert state["uploaded_parts"] == [{"part_number": 1, "size": part_size}, {"part_number": 3, "size": 777}]
    assert [p["part_number"] for p in state["missing_parts"]] == [2]
    assert state["expires_at"]  # fresh URLs, valid for another file_upload_url_ttl_s
    refused = await api_error(alice.complete_upload(ticket["file_id"], sha(data)))
    assert (refused.status, refused.code, refused.details) == (409, "upload_incomplete", {"missing_parts": [2]})

    await put_parts(plain, state["missing_parts"], data, part_size)
    done = await alice.complete_upload(ticket["file_id"], sha(data))
    assert done["status"] == "completed"
    assert sha((await plain.get(done["download_url"])).content) == sha(data)


async def test_a_wrong_checksum_is_refused_and_the_file_is_not_usable(make_user, plain) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    conversation = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
    data = content(5000)
    ticket = await alice.initiate_upload("x.bin", len(data))
    await put_parts(plain, ticket["parts"], data, ticket["part_size"])
    claimed = sha(data + b"!")
    error = await api_error(alice.complete_upload(ticket["file_id"], claimed))
    assert (error.status, error.code) == (422, "checksum_mismatch")
    assert error.details == {"expected": claimed, "actual": sha(data), "stored_size": 5000}

    described = await alice.get_file(ticket["file_id"])
    assert described["status"] == "failed" and described["download_url"] is None
    assert (await api_error(alice.complete_upload(ticket["file_id"], sha(data)))).code == "upload_failed"
    refused = await api_error(alice.send_file(conversation, ticket["file_id"]))
    assert (refused.status, refused.code) == (422, "file_not_ready")
    assert (await api_error(bob.get_file(ticket["file_id"]))).status == 404


async def test_size_limits_and_malformed_requests(make_user, server: RunningServer) -> None:
    alice = await make_user("alice")
    too_big = await api_error(alice.initiate_upload("huge.bin", 2 * GiB + 1))
    assert (too_big.status, too_big.code, too_big.details) == (413, "file_too_large", {"max_size": 2 * GiB})
    biggest = await alice.initiate_upload("biggest.bin", 2 * GiB)
    assert biggest["part_size"] >= 5 * MiB or server.runtime.blobs.min_part_size == 1
    assert sum(1 for _ in biggest["parts"]) * biggest["part_size"] >= 2 * GiB
    for body, code in [
        ({"filename": "a", "size": 0}, "validation_error"),
        ({"filename": "../etc/passwd", "size": 10}, "validation_error"),
        ({"filename": "a", "size": 10, "content_type": "not a type"}, "validation_error"),
        ({"filename": "a", "size": 10, "sha256": "xyz"}, "validation_error"),
        ({"filename": "a", "size": "ten"}, "validation_error"),
    ]:
        error = await api_error(alice.request("POST", "/v1/files/initiate", json=body, expect=(201,)))
        assert (error.status, error.code) == (422, code), body
    for file_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        assert (await api_error(alice.get_file(file_id))).status == 404
        assert (await api_error(alice.upload_state(file_id))).status == 404
        assert (await api_error(alice.complete_upload(file_id, "0" * 64))).status == 404
    error = await api_error(alice.request("POST", "/v1/files/complete", json={"file_id": "x", "sha256": "short"}))
    assert (error.status, error.code) == (422, "validation_error")


async def test_a_part_of_the_wrong_size_is_refused(make_user, plain, backend) -> None:
    alice = await make_user("alice")
    data = content(3000)
    ticket = await alice.initiate_upload("x.bin", len(data))
    url = ticket["parts"][0]["url"]
    too_big = await plain.put(url, content=data + b"x")
    too_small = await plain.put(url, content=data[:-1])
    if backend == "localfs":
        assert (too_big.status_code, too_big.json()["error"]["code"]) == (413, "part_too_large")
        assert (too_small.status_code, too_small.json()["error"]["code"]) == (422, "part_size_mismatch")
    else:  # S3 signs the exact Content-Length
        assert (too_big.status_code, too_small.status_code) == (403, 403)
    assert (await alice.upload_state(ticket["file_id"]))["uploaded_parts"] == []


async def test_altered_part_urls_are_refused(make_user, plain, backend) -> None:
    alice = await make_user("alice")
    data = content(3000)
    ticket = await alice.initiate_upload("x.bin", len(data))
    url = ticket["parts"][0]["url"]
    altered = url[:-6] + ("000000" if not url.endswith("000000") else "111111")
    response = await plain.put(altered, content=data)
    assert response.status_code == 403
    if backend == "localfs":
        assert response.json()["error"]["code"] == "invalid_signature"
    other_size = (
        url.replace("size=3000", "size=3001") if backend == "localfs" else url.replace("partNumber=1&", "partNumber=2&")
    )
    assert (await plain.put(other_size, content=data)).status_code == 403
    assert (await alice.upload_state(ticket["file_id"]))["uploaded_parts"] == []


async def test_expired_upload_and_download_urls_are_refused(settings: Settings, make_user, plain, backend) -> None:
    # a second server whose URLs live one second (the suite's server stays as it is)
    short = settings.model_copy(update={"file_upload_url_ttl_s": 1, "file_download_url_ttl_s": 1})
    running, server, task = await start_server(short)
    try:
        async with Chat4AllClient(running.base_url) as alice:
            await alice.register("alice", "correct-horse-battery")
            await alice.login("alice", "correct-horse-battery")
            data = content(100)
            ticket = await alice.initiate_upload("x.bin", len(data))
            url = ticket["parts"][0]["url"]

            async def part_refused() -> httpx.Response | None:
                response = await plain.put(url, content=data)
                return response if response.status_code == 403 else None

            refused = await wait_until(part_refused, timeout=10, interval=0.2, what="the part URL to expire")
            if backend == "localfs":
                assert refused.json()["error"]["code"] == "url_expired"

            async def stored() -> bool:  # fresh URLs from the upload state, until one is used in time
                state = await alice.upload_state(ticket["file_id"])
                if state["missing_parts"]:
                    await plain.put(state["missing_parts"][0]["url"], content=data)
                return not (await alice.upload_state(ticket["file_id"]))["missing_parts"]

            await wait_until(stored, timeout=10, what="a fresh part URL to work")
            done = await alice.complete_upload(ticket["file_id"], sha(data))

            async def download_refused() -> bool:
                return (await plain.get(done["download_url"])).status_code == 403

            await wait_until(download_refused, timeout=10, interval=0.2, what="the download URL to expire")
    finally:
        server.should_exit = True
        await task


# file messages ---------------------------------------------------------------------------------


async def test_a_file_sent_to_a_group_is_downloaded_by_each_member_and_by_nobody_else(
    make_user, plain, part_size
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    dave = await make_user("dave")  # in no conversation with alice
    group = (await alice.create_conversation("group", ["bob", "carol"], name="trip"))["conversation_id"]
    data = content(part_size + 4321)
    done = await upload(alice, plain, data, name="video.mp4")
    file_id = done["file_id"]
    assert (await api_error(bob.get_file(file_id))).status == 404  # not sent yet

    async with bob.websocket() as socket:
        sent = await alice.send_file(group, file_id, caption="the trip")
        frame = await socket.receive(timeout=15)
        while frame["type"] != "message":
            frame = await socket.receive(timeout=15)
    assert frame["message"]["message_id"] == sent["message_id"]
    assert frame["message"]["payload"] == {
        "type": "file",
        "file_id": file_id,
        "caption": "the trip",
        "filename": "video.mp4",
        "size": len(data),
        "content_type": "video/mp4",
        "sha256": sha(data),
    }

    for member in (bob, carol):
        described = await member.get_file(file_id)
        assert described["status"] == "completed" and described["sha256"] == sha(data)
        downloaded = await plain.get(described["download_url"])
        assert downloaded.status_code == 200 and sha(downloaded.content) == sha(data)
    for outsider_call in (dave.get_file(file_id), dave.upload_state(file_id), dave.complete_upload(file_id, sha(data))):
        assert (await api_error(outsider_call)).status == 404
    # members see the file; only the owner sees the upload
    assert (await api_error(bob.upload_state(file_id))).status == 404


async def test_file_messages_need_a_completed_file_of_the_senders_own(make_user, plain) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    conversation = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
    unfinished = await alice.initiate_upload("x.bin", 10)
    bobs = await upload(bob, plain, content(10), name="bobs.bin")
    for file_id in (unfinished["file_id"], bobs["file_id"], "00000000-0000-0000-0000-000000000000", "nope"):
        error = await api_error(alice.send_file(conversation, file_id))
        assert (error.status, error.code) == (422, "file_not_ready"), file_id
    # bob may forward his own file to alice; then she may fetch it
    sent = await bob.send_file(conversation, bobs["file_id"])
    await persisted(bob, sent["message_id"])
    assert (await alice.get_file(bobs["file_id"]))["download_url"]


async def test_completion_is_announced_as_a_file_event(make_user, plain, server: RunningServer) -> None:
    alice = await make_user("alice")
    done = await upload(alice, plain, content(100))
    consumer = server.runtime.event_log.consumer(FileEvent.topic, group="test-files")
    await consumer.start()
    try:
        records = await wait_until(lambda: consumer.poll(max_records=10, timeout_s=0.5), what="the file event")
    finally:
        await consumer.stop()
    event = FileEvent.decode(records[0].value)
    assert (event.file_id, event.owner, event.size, event.sha256) == (done["file_id"], "alice", 100, done["sha256"])
    assert records[0].key == done["file_id"]


# cleanup ---------------------------------------------------------------------------------------


async def test_abandoned_uploads_are_cleaned_up_by_the_server(settings: Settings, plain) -> None:
    quick = settings.model_copy(update={"file_upload_max_age_s": 1, "file_cleanup_interval_s": 0.1})
    running, server, task = await start_server(quick)
    try:
        async with Chat4AllClient(running.base_url) as alice:
            await alice.register("alice", "correct-horse-battery")
            await alice.login("alice", "correct-horse-battery")
            data = content(100)
            ticket = await alice.initiate_upload("x.bin", len(data))

            async def failed() -> bool:
                return (await alice.upload_state(ticket["file_id"]))["status"] == "failed"

            await wait_until(failed, timeout=10, what="the abandoned upload to be cleaned up")
            late = await plain.put(ticket["parts"][0]["url"], content=data)
            assert late.status_code == 404  # the upload is gone from the blob store too
            error = await api_error(alice.complete_upload(ticket["file_id"], sha(data)))
            assert (error.status, error.code) == (409, "upload_failed")
    finally:
        server.should_exit = True
        await task


async def test_the_cleanup_command_drops_incomplete_uploads(settings: Settings, make_user, plain) -> None:
    alice = await make_user("alice")
    data = content(100)
    kept = await upload(alice, plain, data)
    ticket = await alice.initiate_upload("x.bin", len(data))
    await put_parts(plain, ticket["parts"], data, ticket["part_size"])
    env = {
        "CHAT4ALL_DATA_DIR": str(settings.data_dir),
        "CHAT4ALL_BLOB_URL": settings.resolved_blob_url,
        "CHAT4ALL_LOG_JSON": "false",
    }
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["files", "cleanup", "--older-than", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 abandoned upload" in result.output
    assert (await alice.upload_state(ticket["file_id"]))["status"] == "failed"
    assert (await alice.get_file(kept["file_id"]))["status"] == "completed"
