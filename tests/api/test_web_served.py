"""The web app at / and Swagger UI at /api-docs come from files in the package: every asset
they load is answered by this server (no CDN: they work offline)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


def assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#]+)"', html)


async def test_the_app_and_every_asset_it_loads_are_served_here(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"  # a new build is picked up at once
    links = [a for a in assets(page.text) if not a.startswith("data:")]
    assert not [a for a in links if "//" in a], links  # same origin, nothing from elsewhere
    loaded = [a for a in links if a.startswith("/assets/")]
    assert any(a.endswith(".js") for a in loaded) and any(a.endswith(".css") for a in loaded)
    for asset in loaded:
        answer = await http.get(asset)
        assert answer.status_code == 200, asset
        assert "immutable" in answer.headers["cache-control"]  # hashed names: cached for good
    assert "/api-docs" in (await http.get(next(a for a in loaded if a.endswith(".js")))).text  # the app links the docs


async def test_swagger_ui_loads_from_the_package(http: httpx.AsyncClient) -> None:
    page = await http.get("/api-docs")
    assert page.status_code == 200
    loaded = assets(page.text)
    assert "/api-docs/assets/swagger-ui-bundle.js" in loaded and "/api-docs/assets/swagger-ui.css" in loaded
    for asset in loaded:
        assert asset.startswith("/"), asset
        assert (await http.get(asset)).status_code == 200, asset
    assert "cdn" not in page.text.lower()
    assert (await http.get("/api-docs/oauth2-redirect")).status_code == 200
    assert (await http.get("/assets/nothing.js")).status_code == 404


def test_the_committed_build_is_made_from_the_sources_in_web() -> None:
    """`make web` after changing web/ (the build is committed): the stamp the build wrote into
    index.html is the SHA-256 of the sources it was made from (web/vite.config.ts, sourceDigest)."""
    from chat4all.api.routes.web import APP_DIR

    root = Path(__file__).resolve().parents[2] / "web"
    files = sorted(
        [p.relative_to(root).as_posix() for p in (root / "src").rglob("*") if p.is_file()]
        + ["index.html", "package-lock.json", "vite.config.ts"]
    )
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update((root / name).read_bytes())
        digest.update(b"\0")
    stamp = re.search(r'name="chat4all-web-source" content="([0-9a-f]{64})"', (APP_DIR / "index.html").read_text())
    assert stamp is not None, "index.html has no source stamp: rebuild with `make web`"
    assert stamp.group(1) == digest.hexdigest(), "web/ changed since the committed build: run `make web` and commit"
