"""Every error leaves as ``{"error": {code, message, details, trace_id}}`` (SPEC §2).

Covers the domain's errors, FastAPI's request validation, Starlette's own 404/405, and anything
unexpected (a 500 that says nothing internal and is logged with its trace_id).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from chat4all.api.responses import JSON
from chat4all.api.schemas import UUID_PATTERN, ErrorResponse
from chat4all.domain import errors as e
from chat4all.domain.limits import RateLimited
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import current_trace_id

log = get_logger(__name__)

STATUS_OF: dict[type[e.Chat4AllError], int] = {
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.PayloadTooLarge: 413,
    e.InvalidInput: 422,
    e.Unavailable: 503,
    RateLimited: 429,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def status_of(error: e.Chat4AllError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSON:
    body = {"error": {"code": code, "message": message, "details": details, "trace_id": current_trace_id()}}
    return JSON(body, status_code=status, headers=headers)


# The token endpoint answers its errors as OAuth2 does (RFC 6749 §5.2), so OAuth2 clients such
# as Swagger UI's Authorize dialog read them: {"error": "invalid_grant", "error_description"},
# plus the platform's own code, details and trace_id beside them. Statuses stay the platform's.
TOKEN_PATH = "/v1/auth/token"
_OAUTH2_ERRORS = {
    "unauthenticated": "invalid_grant",
    "validation_error": "invalid_request",
    "malformed_json": "invalid_request",
    "unsupported_media_type": "invalid_request",
    "payload_too_large": "invalid_request",
    "rate_limited": "temporarily_unavailable",
    "unavailable": "temporarily_unavailable",
}


def oauth2_error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSON:
    error = _OAUTH2_ERRORS.get(code, "server_error" if status >= 500 else "invalid_request")
    if code == "validation_error" and any(
        isinstance(d, dict) and ("grant_type" in d.get("loc", []) or d.get("type") == "union_tag_invalid")
        for d in details or []
    ):
        error = "unsupported_grant_type"
    body = {
        "error": error,
        "error_description": message,
        "code": code,
        "details": details,
        "trace_id": current_trace_id(),
    }
    return JSON(body, status_code=status, headers=headers)


def error_response_for(
    path: str, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSON:
    """The error in the shape the path answers in (OAuth2's for the token endpoint)."""
    render = oauth2_error_response if path == TOKEN_PATH else error_response
    return render(status, code, message, details, headers)


def domain_error_response(exc: e.Chat4AllError, path: str = "") -> JSON:
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "1"}
    if isinstance(exc, RateLimited):
        headers = exc.headers()
    return error_response_for(path, status, exc.code, exc.message, exc.details, headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        item = {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        details.append(item)
    return details


_UUID_SEGMENT = UUID_PATTERN.strip("^$")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette's own Allow names only the first
    route that matched the path, while GET and POST /v1/webhooks are two routes). Documented
    paths answer from the OpenAPI document, where ids are UUIDs: ``GET /v1/files/{file_id}``
    has the shape of ``/v1/files/complete``, but "complete" is no file id."""
    path = request.url.path
    documented = [
        method for template, methods in _documented_paths(request.app) for method in methods if template.match(path)
    ]
    if documented:
        return sorted(set(documented))
    return [m for m in _METHODS if _takes(request.app.router.routes, {**request.scope, "method": m})]


def _takes(routes: Any, scope: dict[str, Any]) -> bool:
    """Whether one of these routes takes the scope's path and method (inside mounted apps too)."""
    for route in routes:
        match, child = route.matches(scope)
        if match is not Match.FULL:
            continue
        inner = getattr(route, "routes", None) if isinstance(route, Mount) else None
        if inner is None or _takes(inner, {**scope, **child}):
            return True
    return False


def _documented_paths(app: Any) -> list[tuple[re.Pattern[str], list[str]]]:
    cached = getattr(app.state, "documented_paths", None)
    if cached is None:
        cached = []
        for template, operations in app.openapi().get("paths", {}).items():
            regex = re.sub(
                r"\\\{(\w+)\\\}",
                lambda m: _UUID_SEGMENT if m.group(1).endswith("_id") else "[^/]+",
                re.escape(template),
            )
            cached.append((re.compile(f"^{regex}$"), [m.upper() for m in operations]))
        app.state.documented_paths = cached
    return cached


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(e.Chat4AllError)
    async def _domain(request: Request, exc: e.Chat4AllError) -> JSON:
        return domain_error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSON:
        details = _validation_details(exc)
        path = request.url.path
        if any(d["type"] == "json_invalid" for d in details):
            return error_response_for(path, 400, "malformed_json", "the request body is not valid JSON", details)
        return error_response_for(path, 422, "validation_error", "the request does not match the schema", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSON:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = getattr(exc, "headers", None)
        details = None
        if exc.status_code == 404:
            message = "no such resource"
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
            details = {"allowed": allowed}
        return error_response(exc.status_code, code, message, details, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSON:
        log.exception("unhandled error", error=type(exc).__name__)
        return error_response(500, "internal", "something went wrong on our side; it has been logged")


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    descriptions = {
        400: "Malformed request",
        401: "Missing, invalid or expired token",
        403: "Not allowed",
        404: "Not found, or not visible to you",
        409: "Conflict",
        413: "Too large",
        415: "The body is not JSON",
        422: "Validation error",
        429: "Rate limited: see Retry-After and the RateLimit-* headers",
        503: "A dependency is unavailable",
    }
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}
