"""Files (R5): initiate a multipart upload, its state for resuming, complete, metadata."""

from __future__ import annotations

from fastapi import APIRouter

from chat4all.api.deps import CurrentUser, ServicesDep
from chat4all.api.errors import responses
from chat4all.api.schemas import (
    CompleteUpload,
    FileOut,
    InitiateUpload,
    PartUrlOut,
    UploadedPart,
    UploadStateOut,
    UploadTicketOut,
)
from chat4all.services.files import FileView, PartUrl

router = APIRouter(prefix="/v1/files", tags=["files"])


@router.post("/initiate", status_code=201, response_model=UploadTicketOut, responses=responses(400, 401, 413, 422, 503))
async def initiate(body: InitiateUpload, user: CurrentUser, services: ServicesDep) -> UploadTicketOut:
    """Starts an upload. The server chooses the part size (one part for a small file) and hands
    out one URL per part; PUT each part's bytes to its URL, then complete."""
    ticket = await services.files.initiate(
        owner=user, filename=body.filename, size=body.size, content_type=body.content_type, sha256=body.sha256
    )
    return UploadTicketOut(
        file_id=ticket.file.file_id,
        part_size=ticket.file.part_size,
        parts=_urls(ticket.parts),
        expires_at=ticket.expires_at,
    )


@router.get("/{file_id:id}/upload", response_model=UploadStateOut, responses=responses(401, 404, 503))
async def upload_state(file_id: str, user: CurrentUser, services: ServicesDep) -> UploadStateOut:
    """Which parts are stored, and fresh URLs for the missing ones (resume after a break)."""
    state = await services.files.upload_state(file_id, viewer=user)
    return UploadStateOut(
        file_id=state.file.file_id,
        status=state.file.status.value,
        part_size=state.file.part_size,
        uploaded_parts=[UploadedPart(part_number=p.part_number, size=p.size) for p in state.uploaded],
        missing_parts=_urls(state.missing),
        expires_at=state.expires_at,
    )


@router.post("/complete", response_model=FileOut, responses=responses(400, 401, 404, 409, 422, 503))
async def complete(body: CompleteUpload, user: CurrentUser, services: ServicesDep) -> FileOut:
    """Checks the stored bytes against the SHA-256 you declare; a mismatch (422
    `checksum_mismatch`) makes the file unusable. Missing parts: 409 `upload_incomplete`."""
    return _file(await services.files.complete(caller=user, file_id=body.file_id, sha256=body.sha256))


@router.get("/{file_id:id}", response_model=FileOut, responses=responses(401, 404, 503))
async def get(file_id: str, user: CurrentUser, services: ServicesDep) -> FileOut:
    """The file's metadata and a download URL (1 h). For its owner and for the members of the
    conversations it was sent to."""
    return _file(await services.files.get(file_id, viewer=user))


def _urls(parts: list[PartUrl]) -> list[PartUrlOut]:
    return [PartUrlOut(part_number=p.part_number, url=p.url) for p in parts]


def _file(view: FileView) -> FileOut:
    f = view.file
    return FileOut(
        file_id=f.file_id,
        filename=f.filename,
        size=f.size,
        content_type=f.content_type,
        sha256=f.sha256,
        status=f.status.value,
        created_at=f.created_at,
        completed_at=f.completed_at,
        download_url=view.download_url,
        download_expires_at=view.download_expires_at,
    )
