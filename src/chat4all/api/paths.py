"""The ``id`` path convertor: ``/v1/files/{file_id:id}`` matches UUIDs only.

So ``/v1/files/complete`` is not a file (GET there is 405, as for any path without GET, not a
404 for a file named "complete"), and an id of another shape is 404 before any lookup. The
OpenAPI document shows the plain ``{file_id}`` with the UUID pattern (``api/openapi.py``)."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from chat4all.api.schemas import UUID_PATTERN


class IdConvertor(Convertor[str]):
    regex = UUID_PATTERN.strip("^$")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())
