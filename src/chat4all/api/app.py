"""The FastAPI application: routes, WebSocket, middleware and the OpenAPI document.

It is given what it serves: the services (``services/bundle.py``), the settings, the process's
start and stop, and the ASGI apps to mount (the local-disk blob store's signed URLs). The
composition root (``runtime.create_app``) builds those and calls ``build_app``; this package
imports no adapter and not the runtime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from chat4all import __version__
from chat4all.api import fast_send, ws
from chat4all.api.errors import install_error_handlers
from chat4all.api.middleware import BodyLimit, JsonBody, RequestContext
from chat4all.api.openapi import complete_openapi
from chat4all.api.openapi_product import operation_id, polish
from chat4all.api.routes import (
    auth,
    connectors,
    conversations,
    files,
    health,
    messages,
    presence,
    users,
    v2_live,
    webhooks,
)
from chat4all.api.routes import web as web_app  # the web app at / and Swagger UI at /api-docs
from chat4all.api.routes.v2 import conversations as v2_conversations
from chat4all.api.routes.v2 import messages as v2_messages
from chat4all.api.schemas import PasswordGrant, RefreshGrant
from chat4all.config import Settings
from chat4all.observability import heap
from chat4all.services.bundle import Services

DESCRIPTION = """One API to reach people in-app and on external channels.

Authenticate with `POST /v1/auth/token` (or the **Authorize** button), then send with
`POST /v1/messages` and receive over the WebSocket `/v1/ws` (authenticated by the
`Authorization` header, the subprotocols `["chat4all.v1", "bearer.<token>"]`, or a first frame
`{"type":"auth","token":...}`). Every error has the shape
`{"error": {"code", "message", "details", "trace_id"}}`.
"""


class Chat4AllAPI(FastAPI):
    """FastAPI, with the send path (``api/fast_send.py``) taken before the framework's stack."""

    send_lane: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.send_lane
        if lane is not None and scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in fast_send.PATHS:
            scope["app"] = self
            await lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def full_stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The application without the send lane: what the lane hands on."""
        await super().__call__(scope, receive, send)


def build_app(
    settings: Settings,
    *,
    services: Services,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    serve_api: bool = True,
    mounts: Mapping[str, ASGIApp] | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """``serve_api``: the public routes and the WebSocket (API nodes; router and webhook
    processes serve only their health and metrics). ``mounts``: path prefix → ASGI app, outside
    the JSON body rules. ``freeze_heap``: for a server process (``chat4all serve``), see
    observability/heap.py."""
    mounts = dict(mounts or {})
    heap.observe_pauses()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start()
        if freeze_heap:
            heap.freeze_startup_heap()
        try:
            yield
        finally:
            await stop()

    app = Chat4AllAPI(
        title="Chat4All",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # /api-docs: routes/web.py, from the package's own Swagger UI assets
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,  # readable operationIds (api/openapi_product.py)
    )
    app.state.services = services
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    if serve_api:
        for module in (auth, users, conversations, messages, presence, files, webhooks, connectors, v2_live):
            app.include_router(module.router)
        for module in (v2_conversations, v2_messages):  # API v2 (docs/api-v2.md)
            app.include_router(module.router)
        app.include_router(ws.router)
        for prefix, mounted in mounts.items():
            app.mount(prefix, mounted)
        web_app.install(app)  # the web app at / and Swagger UI at /api-docs
        app.send_lane = fast_send.SendLane(
            app.full_stack,
            max_body_bytes=settings.max_body_bytes,
            access_log=settings.access_log,
            cors=bool(settings.cors_origin_list),
        )
    exempt = tuple(f"{prefix}/" for prefix in mounts)
    app.add_middleware(JsonBody, form_paths=frozenset({"/v1/auth/token"}), exempt_prefixes=exempt)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, exempt_prefixes=exempt)
    if settings.cors_origin_list:  # browsers on these origins may call the API (tokens, not cookies)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
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
    complete_openapi(schema, app.state.services, app.state.settings)  # what the server enforces beyond its models
    base = app.state.settings.public_base_url  # else "/": the server that serves this document
    polish(schema, servers=[{"url": base.rstrip("/") if base else "/", "description": "this server"}])
    app.openapi_schema = schema
    return schema
