"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from chat4all import __version__
from chat4all.adapters.localfs import URL_PREFIX as BLOB_URL_PREFIX
from chat4all.adapters.localfs import LocalBlobStore
from chat4all.api import ws
from chat4all.api.errors import install_error_handlers
from chat4all.api.fast_send import SendFastPath
from chat4all.api.middleware import BodyLimit, JsonBody, RequestContext
from chat4all.api.openapi import complete_openapi
from chat4all.api.routes import auth, blobs, conversations, files, health, messages, presence, users, webhooks
from chat4all.api.routes import connectors
from chat4all.api.schemas import PasswordGrant, RefreshGrant
from chat4all.config import Settings
from chat4all.observability import heap
from chat4all.runtime import Role, Runtime, build_runtime
from chat4all.api.routes import web as web_app  # the web app at / and Swagger UI at /api-docs

DESCRIPTION = """One API to reach people in-app and on external channels.

Authenticate with `POST /v1/auth/token` (or the **Authorize** button), then send with
`POST /v1/messages` and receive over the WebSocket `/v1/ws` (authenticated by the
`Authorization` header, the subprotocols `["chat4all.v1", "bearer.<token>"]`, or a first frame
`{"type":"auth","token":...}`). Every error has the shape
`{"error": {"code", "message", "details", "trace_id"}}`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    role: Role = Role.ALL,
    runtime: Runtime | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """``freeze_heap``: for a server process (``chat4all serve``), see observability/heap.py."""
    settings = settings or Settings()
    runtime = runtime or build_runtime(settings, role)
    heap.observe_pauses()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if freeze_heap:
            heap.freeze_startup_heap()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Chat4All",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # /api-docs: routes/web.py, from the package's own Swagger UI assets
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(health.router)
    if role in (Role.ALL, Role.API):  # router and webhook processes serve only their health and metrics
        for module in (auth, users, conversations, messages, presence, files, webhooks, connectors):
            app.include_router(module.router)
        app.include_router(ws.router)
        if isinstance(runtime.blobs, LocalBlobStore):  # the app serves the local disk's signed URLs
            app.include_router(blobs.router)
        web_app.install(app)  # the web app at / and Swagger UI at /api-docs
    if role in (Role.ALL, Role.API):
        app.add_middleware(SendFastPath)  # innermost: inside the body limit and the trace context
    app.add_middleware(JsonBody, form_paths=frozenset({"/v1/auth/token"}), exempt_prefixes=(f"{BLOB_URL_PREFIX}/",))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, exempt_prefixes=(f"{BLOB_URL_PREFIX}/",))
    if settings.cors_origin_list:  # browsers on these origins may call the API (tokens, not cookies)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "traceparent"],
            expose_headers=["x-trace-id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
            max_age=600,
        )
    app.add_middleware(RequestContext, access_log=settings.access_log)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # FastAPI documents its own validation error shape; ours replaces it (api/errors.py)
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            invalid = operation.get("responses", {}).get("422")
            if invalid is not None:
                invalid["content"] = {"application/json": {"schema": error_ref}}
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    # the token endpoint parses its body by content type itself; publish the two grant shapes
    for model in (PasswordGrant, RefreshGrant):
        components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    complete_openapi(schema, app.state.runtime)  # what the server enforces beyond its models
    app.openapi_schema = schema
    return schema
