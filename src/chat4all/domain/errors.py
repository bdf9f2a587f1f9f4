"""Errors every layer raises; the API turns them into the contract's error shape.

Each error carries a stable machine-readable ``code`` (SPEC §2). The HTTP status lives in
``api.errors`` so that the domain stays transport-free.
"""

from __future__ import annotations

from typing import Any


class Chat4AllError(Exception):
    code = "error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class Unauthenticated(Chat4AllError):
    code = "unauthenticated"


class Forbidden(Chat4AllError):
    code = "forbidden"


class NotFound(Chat4AllError):
    code = "not_found"


class Conflict(Chat4AllError):
    code = "conflict"


class UsernameTaken(Conflict):
    code = "username_taken"


class InvalidInput(Chat4AllError):
    """422: the request is well formed but its content breaks a rule."""

    code = "validation_error"


class UnknownUser(InvalidInput):
    code = "unknown_user"


class UnsupportedChannel(InvalidInput):
    code = "unsupported_channel"


class PayloadTooLarge(Chat4AllError):
    code = "payload_too_large"


class Unavailable(Chat4AllError):
    """A dependency (database, event log, ...) could not take the work; retry later."""

    code = "unavailable"
