"""The web app at ``/`` and Swagger UI at ``/api-docs``, both from files inside the package.

The app is built from ``web/`` (TypeScript, Vite) into ``api/static/web`` and committed, so a
fresh machine serves it with no Node.js and no network; Swagger UI's assets are the pinned
``swagger-ui-dist`` copied there by the same build. The app's routes live after ``#`` in the
URL, so the server needs only ``/`` and the hashed assets (cached for good: a new build has new
names)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"
APP_DIR = STATIC / "web"
SWAGGER_DIR = STATIC / "swagger-ui"
DOCS_PATH = "/api-docs"

router = APIRouter(include_in_schema=False)


class _ImmutableFiles(StaticFiles):
    async def get_response(self, path: str, scope):
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


@router.get("/")
async def web_app() -> Response:
    index = APP_DIR / "index.html"
    if not index.is_file():
        return HTMLResponse(
            "<p>The web app is not built in this checkout: run <code>make web</code>. "
            f'The API is documented at <a href="{DOCS_PATH}">{DOCS_PATH}</a>.</p>',
            status_code=503,
        )
    return FileResponse(index, headers={"cache-control": "no-cache"})


@router.get(DOCS_PATH)
async def api_docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="Chat4All API",
        swagger_js_url=f"{root}{DOCS_PATH}/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_PATH}/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_PATH}/assets/favicon-32x32.png",
        oauth2_redirect_url=f"{root}{DOCS_PATH}/oauth2-redirect",
        swagger_ui_parameters={"persistAuthorization": True, "tryItOutEnabled": True},
    )


@router.get(f"{DOCS_PATH}/oauth2-redirect")
async def api_docs_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


def install(app: FastAPI) -> None:
    app.include_router(router)
    if (APP_DIR / "assets").is_dir():
        app.mount("/assets", _ImmutableFiles(directory=APP_DIR / "assets"), name="web-assets")
    app.mount(f"{DOCS_PATH}/assets", StaticFiles(directory=SWAGGER_DIR, check_dir=False), name="swagger-ui")
