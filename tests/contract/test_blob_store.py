"""The BlobStore contract, on every adapter: the local disk (whose signed URLs the app serves)
and S3 (SeaweedFS). Bytes travel the way clients send them: plain HTTP to the store's URLs."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from chat4all.config import Settings
from chat4all.domain.errors import NotFound
from chat4all.domain.files import MiB
from chat4all.domain.ids import utcnow
from chat4all.ports import BlobStore, StoredPart
from tests.conftest import start_server, wait_until
from tests.s3 import purge, s3_test_url

# S3 wants every part but the last to have at least 5 MiB; the same sizes serve both adapters
PART = 5 * MiB


@pytest.fixture(params=["localfs", pytest.param("s3", marks=pytest.mark.s3)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    """The runtime's blob store inside a running server (the local disk's URLs need the app)."""
    blob_url = s3_test_url() if request.param == "s3" else f"file://{tmp_path}/files"
    settings = Settings(
        data_dir=tmp_path / "data", blob_url=blob_url, bcrypt_rounds=4, access_log=False, node_id="test-node"
    )
    running, server, task = await start_server(settings)
    yield running.runtime.blobs
    server.should_exit = True
    await task
    if request.param == "s3":
        await purge(blob_url)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:  # no token: the URLs carry their authorization
        yield client


def data(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def later(seconds: float = 600):
    return utcnow() + timedelta(seconds=seconds)


async def put_part(
    http: httpx.AsyncClient, store: BlobStore, key: str, upload_id: str, n: int, body: bytes
) -> httpx.Response:
    url = await store.part_url(key, upload_id, n, size=len(body), expires_at=later())
    return await http.put(url, content=body)


async def test_a_multipart_upload_is_joined_digested_served_with_ranges_and_deleted(
    store: BlobStore, http: httpx.AsyncClient
) -> None:
    content = data(PART + 1234)
    key = "files/contract-multipart"
    upload_id = await store.create_upload(key)
    # out of order, as parallel clients do
    assert (await put_part(http, store, key, upload_id, 2, content[PART:])).status_code == 200
    assert (await put_part(http, store, key, upload_id, 1, content[:PART])).status_code == 200
    parts = await store.list_parts(key, upload_id)
    assert [(p.part_number, p.size) for p in parts] == [(1, PART), (2, 1234)]

    await store.complete_upload(key, upload_id, parts)
    assert await store.digest(key) == (hashlib.sha256(content).hexdigest(), len(content))
    with pytest.raises(NotFound):
        await store.list_parts(key, upload_id)  # the upload is over

    url = await store.download_url(key, filename="clip é.bin", content_type="video/mp4", expires_at=later())
    whole = await http.get(url)
    assert whole.status_code == 200 and whole.content == content
    assert whole.headers["content-type"].startswith("video/mp4")
    assert "filename*=UTF-8''clip%20%C3%A9.bin" in whole.headers["content-disposition"]
    ranged = await http.get(url, headers={"Range": f"bytes={PART - 10}-{PART + 9}"})
    assert ranged.status_code == 206 and ranged.content == content[PART - 10 : PART + 10]

    await store.delete(key)
    await store.delete(key)  # idempotent
    with pytest.raises(NotFound):
        await store.digest(key)
    assert (await http.get(url)).status_code in (403, 404)


async def test_a_part_sent_twice_counts_once_and_an_interrupted_one_is_not_kept(
    store: BlobStore, http: httpx.AsyncClient
) -> None:
    """What a flaky link does: a part whose answer was lost is sent again; another breaks off."""
    key = "files/contract-replace"
    upload_id = await store.create_upload(key)
    assert (await put_part(http, store, key, upload_id, 1, data(1000, seed=2))).status_code == 200
    assert (await put_part(http, store, key, upload_id, 1, data(1000, seed=2))).status_code == 200
    url = await store.part_url(key, upload_id, 2, size=PART, expires_at=later())

    async def half_then_break() -> AsyncIterator[bytes]:
        yield data(PART // 2)
        raise ConnectionResetError("the link dropped")

    with pytest.raises((ConnectionResetError, httpx.HTTPError)):
        await http.put(url, content=half_then_break(), headers={"Content-Length": str(PART)})
    parts = await store.list_parts(key, upload_id)
    assert [(p.part_number, p.size) for p in parts] == [(1, 1000)]
    await store.complete_upload(key, upload_id, parts)
    assert (await store.digest(key))[0] == hashlib.sha256(data(1000, seed=2)).hexdigest()
    await store.delete(key)


async def test_a_part_of_another_size_than_signed_is_refused(store: BlobStore, http: httpx.AsyncClient) -> None:
    key = "files/contract-sizes"
    upload_id = await store.create_upload(key)
    url = await store.part_url(key, upload_id, 1, size=1000, expires_at=later())
    too_big = await http.put(url, content=data(1001))
    too_small = await http.put(url, content=data(999))
    assert too_big.status_code in (403, 413), too_big.text  # S3 refuses the signature, the disk the size
    assert too_small.status_code in (403, 422), too_small.text
    assert await store.list_parts(key, upload_id) == []
    await store.abort_upload(key, upload_id)


async def test_altered_urls_are_refused(store: BlobStore, http: httpx.AsyncClient) -> None:
    key = "files/contract-altered"
    upload_id = await store.create_upload(key)
    url = await store.part_url(key, upload_id, 1, size=1000, expires_at=later())
    body = data(1000)
    edits = [
        ("partNumber=1&", "partNumber=2&"),  # S3: another part
        ("/parts/1?", "/parts/2?"),  # local disk: another part
        ("size=1000", "size=2000"),  # local disk: a bigger part
        ("X-Amz-Expires=", "X-Amz-Expires=9"),  # S3: a longer life
        ("expires=", "expires=9"),  # local disk: a longer life
    ]
    tampered = [url.replace(old, new) for old, new in edits if old in url]
    tampered.append(url[:-4] + ("0000" if not url.endswith("0000") else "1111"))  # the signature's last digits
    tampered.append(url.split("?")[0])  # no signature at all
    assert len(tampered) >= 4
    for altered in tampered:
        assert altered != url
        response = await http.put(altered, content=body)
        assert response.status_code == 403, (altered, response.text)
    assert await store.list_parts(key, upload_id) == []
    await store.abort_upload(key, upload_id)


async def test_urls_stop_working_when_they_expire(store: BlobStore, http: httpx.AsyncClient) -> None:
    key = "files/contract-expiry"
    upload_id = await store.create_upload(key)
    url = await store.part_url(key, upload_id, 1, size=10, expires_at=later(1))

    async def refused() -> bool:
        return (await http.put(url, content=b"0123456789")).status_code == 403

    await wait_until(refused, timeout=10, interval=0.2, what="the part URL to expire")
    await store.abort_upload(key, upload_id)


async def test_unknown_uploads_and_objects(store: BlobStore, http: httpx.AsyncClient) -> None:
    key = "files/contract-unknown"
    upload_id = await store.create_upload(key)
    url = await store.part_url(key, upload_id, 1, size=10, expires_at=later())
    await store.abort_upload(key, upload_id)
    await store.abort_upload(key, upload_id)  # idempotent
    with pytest.raises(NotFound):
        await store.list_parts(key, upload_id)
    with pytest.raises(NotFound):
        await store.complete_upload(key, upload_id, [StoredPart(1, 10)])
    assert (await http.put(url, content=b"0123456789")).status_code == 404  # a validly signed URL of a gone upload
    with pytest.raises(NotFound):
        await store.digest("files/never-stored")


async def test_ping_answers_when_the_store_is_reachable(store: BlobStore) -> None:
    await store.ping()
    assert store.min_part_size in (1, 5 * MiB)
