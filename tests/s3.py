"""The S3 server the tests use (SeaweedFS from ``scripts/services.sh``), by URL in the environment.

Unreachable or unset: the S3 tests skip — except in CI, where they fail, because a real-server
test must never be skipped silently there.
"""

from __future__ import annotations

import os
import secrets
import socket
from urllib.parse import urlsplit

from chat4all.adapters.s3 import parse_s3_url
from tests.conftest import server_missing

S3_URL_ENV = "CHAT4ALL_TEST_S3_URL"


def s3_test_url() -> str:
    """The test bucket's URL with a key prefix of its own, so tests never see each other's keys."""
    raw = os.environ.get(S3_URL_ENV)
    problem = None
    if not raw:
        problem = (
            f'{S3_URL_ENV} is not set (run `scripts/services.sh up seaweedfs` and `eval "$(scripts/services.sh env)"`)'
        )
    else:
        endpoint = urlsplit(parse_s3_url(raw).endpoint or "http://s3.amazonaws.com")
        try:
            socket.create_connection((endpoint.hostname, endpoint.port or 80), timeout=2).close()
        except OSError as exc:
            problem = f"the S3 server at {endpoint.netloc} is unreachable: {exc}"
    if problem:
        server_missing(problem)
    parts = urlsplit(raw)
    return f"s3://{parts.netloc}/tests-{secrets.token_hex(4)}?{parts.query}"


async def purge(url: str) -> None:
    """Deletes every object and unfinished upload under the URL's prefix (after a test)."""
    from aiobotocore.session import get_session

    where = parse_s3_url(url)
    async with get_session().create_client(
        "s3",
        endpoint_url=where.endpoint,
        region_name=where.region,
        aws_access_key_id=where.access_key,
        aws_secret_access_key=where.secret_key,
    ) as s3:
        uploads = await s3.list_multipart_uploads(Bucket=where.bucket, Prefix=where.prefix)
        for upload in uploads.get("Uploads", []):
            await s3.abort_multipart_upload(Bucket=where.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=where.prefix):
            for item in page.get("Contents", []):
                await s3.delete_object(Bucket=where.bucket, Key=item["Key"])
