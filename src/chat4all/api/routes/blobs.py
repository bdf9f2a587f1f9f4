"""The signed URLs of the local-disk blob store (embedded profile): part uploads and downloads.

No token: the HMAC signature in the URL is the authorization. These paths are opaque to
clients (they only follow URLs the API handed out), so they stay out of the OpenAPI document.
The JSON body limit does not apply here; a part is streamed to disk and may not exceed the
size its URL was signed for.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, Response

from chat4all.adapters.localfs import URL_PREFIX, LocalBlobStore
from chat4all.api.errors import error_response
from chat4all.api.responses import JSON
from chat4all.domain.files import DOWNLOAD_HEADERS, MiB, content_disposition, served_type

router = APIRouter(prefix=URL_PREFIX, include_in_schema=False)


class _BlobFile(FileResponse):
    chunk_size = MiB  # fewer thread hops than the default 64 KiB for files of gigabytes


def _store(request: Request) -> LocalBlobStore:
    store = request.app.state.runtime.blobs
    assert isinstance(store, LocalBlobStore)
    return store


@router.put("/uploads/{upload_id}/parts/{part_number}")
async def put_part(
    upload_id: str,
    part_number: int,
    request: Request,
    size: str | None = None,
    expires: str | None = None,
    sig: str | None = None,
) -> Response:
    store = _store(request)
    expected = store.check_part_url(upload_id, part_number, size=size, expires=expires, sig=sig)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > expected:
        return error_response(
            413,
            "part_too_large",
            f"part {part_number} is larger than its {expected} bytes",
            {"part_number": part_number, "expected": expected},
        )
    try:
        part = await store.write_part(upload_id, part_number, size=expected, chunks=request.stream())
    except ClientDisconnect:
        # the client went away mid-part: nothing was kept; it resumes from the upload state
        return error_response(400, "upload_interrupted", "the connection closed before the part was complete")
    return JSON({"part_number": part.part_number, "size": part.size}, headers={"ETag": f'"{part_number}-{part.size}"'})


@router.api_route("/objects/{key:path}", methods=["GET", "HEAD"])
async def get_object(
    key: str,
    request: Request,
    expires: str | None = None,
    name: str | None = None,
    type: str | None = None,
    sig: str | None = None,
) -> Response:
    path = _store(request).check_download_url(key, expires=expires, name=name, type=type, sig=sig)
    return _BlobFile(
        path,
        media_type=served_type(type) if type else "application/octet-stream",
        headers={
            "content-disposition": content_disposition(name or path.name),
            "cache-control": "private, no-store",
            **DOWNLOAD_HEADERS,
        },
    )
