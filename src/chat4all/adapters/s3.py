"""BlobStore on the S3 API (SeaweedFS here, MinIO or AWS in deployments), with aiobotocore.

URL: ``s3://BUCKET[/PREFIX]?endpoint=http://host:8333&access_key=…&secret_key=…&region=…``
plus optional ``public_endpoint=`` (the address clients use, when it differs from the one the
API uses: presigned URLs are signed for their host) and ``addressing_style=path|virtual``.
Without keys the usual AWS credential chain applies.

Parts go straight from the client to S3 through one presigned ``UploadPart`` URL each. The
URL signs the part's exact Content-Length, so S3 itself refuses a part of any other size.
Recent botocore adds checksum parameters by default that some S3 servers refuse on presigned
URLs; ``request_checksum_calculation="when_required"`` keeps the URLs plain.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chat4all.domain.errors import Conflict, NotFound, Unavailable
from chat4all.domain.files import MiB, content_disposition, served_type
from chat4all.ports import StoredPart

READ_CHUNK = MiB
_GONE = {"NoSuchUpload", "NoSuchKey", "NotFound", "404"}
_BAD_PARTS = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str
    endpoint: str | None
    public_endpoint: str | None
    access_key: str | None
    secret_key: str | None
    region: str
    addressing_style: str


def parse_s3_url(url: str) -> S3Location:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://BUCKET URL: {url!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    prefix = parts.path.strip("/")
    return S3Location(
        bucket=parts.netloc,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=query.get("endpoint"),
        public_endpoint=query.get("public_endpoint") or query.get("endpoint"),
        access_key=query.get("access_key"),
        secret_key=query.get("secret_key"),
        region=query.get("region", "us-east-1"),
        addressing_style=query.get("addressing_style", "path"),
    )


class S3BlobStore:
    min_part_size = 5 * MiB  # S3's rule for every part but the last

    def __init__(self, url: str, *, key_prefix: str = "") -> None:
        self._where = parse_s3_url(url)
        self._prefix = self._where.prefix + key_prefix
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._signer: Any = None  # the same client, unless clients reach S3 at another address

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._stack is not None:
            return
        stack = AsyncExitStack()
        self._client = await stack.enter_async_context(self._new_client(self._where.endpoint))
        self._signer = self._client
        if self._where.public_endpoint != self._where.endpoint:
            self._signer = await stack.enter_async_context(self._new_client(self._where.public_endpoint))
        self._stack = stack

    def _new_client(self, endpoint: str | None) -> Any:
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": self._where.addressing_style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        return get_session().create_client(
            "s3",
            endpoint_url=endpoint,
            region_name=self._where.region,
            aws_access_key_id=self._where.access_key,
            aws_secret_access_key=self._where.secret_key,
            config=config,
        )

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def ping(self) -> None:
        async with self._calls("reach the bucket"):
            await self._s3.head_bucket(Bucket=self._where.bucket)

    @property
    def _s3(self) -> Any:
        if self._client is None:
            raise Unavailable("the S3 client is not started")
        return self._client

    # the port --------------------------------------------------------------------------------

    async def create_upload(self, key: str) -> str:
        async with self._calls("start an upload"):
            answer = await self._s3.create_multipart_upload(Bucket=self._where.bucket, Key=self._key(key))
        return str(answer["UploadId"])

    async def part_url(self, key: str, upload_id: str, part_number: int, *, size: int, expires_at: datetime) -> str:
        params = {
            "Bucket": self._where.bucket,
            "Key": self._key(key),
            "UploadId": upload_id,
            "PartNumber": part_number,
            "ContentLength": size,  # signed: S3 refuses a body of another size
        }
        return await self._presign("upload_part", params, expires_at)

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        # SeaweedFS lists every upload of a part (AWS keeps the last one only): keep the newest
        latest: dict[int, dict[str, Any]] = {}
        marker = 0
        async with self._calls("list the parts"):
            while True:
                answer = await self._s3.list_parts(
                    Bucket=self._where.bucket,
                    Key=self._key(key),
                    UploadId=upload_id,
                    MaxParts=1000,
                    PartNumberMarker=marker,
                )
                for part in answer.get("Parts", []):
                    seen = latest.get(part["PartNumber"])
                    if seen is None or part.get("LastModified", 0) >= seen.get("LastModified", 0):
                        latest[part["PartNumber"]] = part
                if not answer.get("IsTruncated"):
                    break
                marker = int(answer["NextPartNumberMarker"])
        return [StoredPart(part_number=n, size=p["Size"], etag=p["ETag"]) for n, p in sorted(latest.items())]

    async def complete_upload(self, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
        async with self._calls("complete the upload"):
            await self._s3.complete_multipart_upload(
                Bucket=self._where.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p.part_number, "ETag": p.etag} for p in parts]},
            )

    async def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            async with self._calls("abort the upload"):
                await self._s3.abort_multipart_upload(Bucket=self._where.bucket, Key=self._key(key), UploadId=upload_id)
        except NotFound:
            pass

    async def digest(self, key: str) -> tuple[str, int]:
        async with self._calls("read the object"):
            answer = await self._s3.get_object(Bucket=self._where.bucket, Key=self._key(key))
            body = answer["Body"]
            try:
                return await _sha256_of(body.iter_chunks(READ_CHUNK))
            finally:
                body.close()

    async def download_url(self, key: str, *, filename: str, content_type: str, expires_at: datetime) -> str:
        params = {
            "Bucket": self._where.bucket,
            "Key": self._key(key),
            "ResponseContentDisposition": content_disposition(filename),
            "ResponseContentType": served_type(content_type),  # never an active type (HTML, SVG, ...)
        }
        return await self._presign("get_object", params, expires_at)

    async def delete(self, key: str) -> None:
        async with self._calls("delete the object"):
            await self._s3.delete_object(Bucket=self._where.bucket, Key=self._key(key))

    # internals -------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _presign(self, operation: str, params: dict[str, Any], expires_at: datetime) -> str:
        expires_in = max(1, math.ceil(expires_at.timestamp() - time.time()))
        if self._signer is None:
            raise Unavailable("the S3 client is not started")
        return str(await self._signer.generate_presigned_url(operation, Params=params, ExpiresIn=expires_in))

    @asynccontextmanager
    async def _calls(self, what: str) -> AsyncIterator[None]:
        """Turns S3's answers into the domain's errors: gone → NotFound, refused parts →
        Conflict, anything server-side or on the network → Unavailable."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _GONE or status == 404:
                raise NotFound(f"could not {what}: {code or 'not found'}") from exc
            if code in _BAD_PARTS:
                raise Conflict(f"could not {what}: {error.get('Message', code)}") from exc
            raise Unavailable(f"object storage refused to {what} ({code or status})") from exc
        except (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"object storage is not reachable (could not {what})") from exc


async def _sha256_of(chunks: AsyncIterator[bytes]) -> tuple[str, int]:
    """Hashes a stream in a worker thread (hashlib releases the GIL), reading the next chunk
    while the previous one is hashed; at most two chunks are held at a time."""
    digest = hashlib.sha256()
    size = 0
    hashing: asyncio.Future[None] | None = None
    async for chunk in chunks:
        if hashing is not None:
            await hashing
        size += len(chunk)
        hashing = asyncio.ensure_future(asyncio.to_thread(digest.update, chunk))
    if hashing is not None:
        await hashing
    return digest.hexdigest(), size
