"""The signed URLs of the local-disk blob store (embedded profile), as an ASGI app of its own.

``LocalBlobStore`` hands out URLs under ``URL_PREFIX``; the composition root mounts this app
there when the blob store is ``file://`` (with S3 the URLs are the object store's own). No token:
the HMAC signature in the URL is the authorization. These paths are opaque to clients (they only
follow URLs the API handed out), so they stay out of the OpenAPI document. The JSON body limit
does not apply here; a part is streamed to disk and may not exceed the size its URL was signed
for. Errors are raised as domain errors: the host application renders them in the contract's
shape like any other.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, Router

from chat4all.adapters.localfs import LocalBlobStore
from chat4all.domain.errors import Chat4AllError, InvalidInput, PayloadTooLarge
from chat4all.domain.files import DOWNLOAD_HEADERS, MiB, content_disposition, served_type


class _BlobFile(FileResponse):
    chunk_size = MiB  # fewer thread hops than the default 64 KiB for files of gigabytes


def signed_url_app(store: LocalBlobStore) -> Router:
    """Part uploads (PUT) and downloads (GET, HEAD) of ``store``, relative to its URL prefix."""

    async def put_part(request: Request) -> Response:
        upload_id = request.path_params["upload_id"]
        part_number = _int(request.path_params["part_number"], "part_number")
        query = request.query_params
        expected = store.check_part_url(
            upload_id, part_number, size=query.get("size"), expires=query.get("expires"), sig=query.get("sig")
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > expected:
            raise PayloadTooLarge(
                f"part {part_number} is larger than its {expected} bytes",
                code="part_too_large",
                details={"part_number": part_number, "expected": expected},
            )
        try:
            part = await store.write_part(upload_id, part_number, size=expected, chunks=request.stream())
        except ClientDisconnect:
            # the client went away mid-part: nothing was kept; it resumes from the upload state
            raise Chat4AllError(
                "the connection closed before the part was complete", code="upload_interrupted"
            ) from None
        return JSONResponse(
            {"part_number": part.part_number, "size": part.size}, headers={"ETag": f'"{part_number}-{part.size}"'}
        )

    async def get_object(request: Request) -> Response:
        query = request.query_params
        name, type_ = query.get("name"), query.get("type")
        path = store.check_download_url(
            request.path_params["key"], expires=query.get("expires"), name=name, type=type_, sig=query.get("sig")
        )
        return _BlobFile(
            path,
            media_type=served_type(type_) if type_ else "application/octet-stream",
            headers={
                "content-disposition": content_disposition(name or path.name),
                "cache-control": "private, no-store",
                **DOWNLOAD_HEADERS,
            },
        )

    return Router(
        routes=[
            Route("/uploads/{upload_id}/parts/{part_number}", put_part, methods=["PUT"]),
            Route("/objects/{key:path}", get_object, methods=["GET", "HEAD"]),
        ]
    )


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer", details={name: value}) from None
