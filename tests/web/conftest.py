"""The web app in a real browser: Playwright driving Debian's Chromium (never a downloaded one).

`scripts/test.sh` installs the `chromium` package; without it (or without Playwright) these
tests skip on a developer's machine and fail in CI (``server_missing``)."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import server_missing

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORD = "correct-horse-battery"
TIMEOUT_MS = 20_000


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        server_missing("Debian's chromium is not installed (scripts/test.sh installs it)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        server_missing("playwright is not installed (pip install -e '.[test]')")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        await browser.close()


V2_PATHS = ("/v2/conversations", "/v2/conversations/{conversation_id}/typing")


async def require_v2(base_url: str) -> None:
    """The v2 features (typing, groups managed in the app) light up when the server has API v2:
    its conversations (the inbox, groups) and its live side (typing's HTTP twin stands for /v2/ws,
    which the OpenAPI document cannot list)."""
    async with httpx.AsyncClient() as http:
        paths = (await http.get(f"{base_url}/openapi.json")).json().get("paths", {})
    missing = [p for p in V2_PATHS if p not in paths]
    if missing:
        pytest.skip(f"this server has no API v2 ({', '.join(missing)} not in /openapi.json): the v2 screens are off")


@dataclass
class Person:
    """One user in one browser context, driving the app as a person would."""

    name: str
    context: Any
    page: Any
    base_url: str

    @classmethod
    async def open(cls, browser: Any, base_url: str, name: str, **context_options: Any) -> Person:
        context = await browser.new_context(accept_downloads=True, **context_options)
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        person = cls(name, context, page, base_url)
        person.errors = errors  # type: ignore[attr-defined]
        await page.goto(base_url + "/")
        return person

    async def sign_up(self) -> None:
        page = self.page
        await page.get_by_role("button", name="Create an account").click()
        await page.get_by_label("Username").fill(self.name)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign up").click()
        await page.get_by_test_id("me").filter(has_text=self.name).wait_for()
        await self.online()

    async def online(self) -> None:
        await self.page.locator('[data-testid=connection][data-state=online]').wait_for()

    async def start_chat(self, *others: str, group: str | None = None) -> None:
        page = self.page
        await page.get_by_test_id("new-chat").click()
        if group is not None:
            await page.get_by_label("Group", exact=True).check()
            await page.get_by_label("Group name").fill(group)
        await page.get_by_test_id("new-members").fill(", ".join(others))
        await page.get_by_role("button", name="Start").click()
        await page.get_by_test_id("conversation-title").wait_for()

    async def open_chat(self, title: str) -> None:
        await self.page.locator(f'[data-testid=conversation][data-title="{title}"]').click()
        await self.page.get_by_test_id("conversation-title").filter(has_text=title).wait_for()

    async def send(self, text: str) -> None:
        await self.page.get_by_test_id("compose").fill(text)
        await self.page.get_by_test_id("compose").press("Enter")

    def message(self, text: str) -> Any:
        return self.page.get_by_test_id("message").filter(has=self.page.get_by_test_id("text").filter(
            has_text=re.compile(f"^{re.escape(text)}$")))

    async def shown_texts(self) -> list[str]:
        return await self.page.get_by_test_id("text").all_inner_texts()

    async def tick(self, text: str) -> str:
        return await self.message(text).get_by_test_id("tick").get_attribute("data-status") or ""

    async def wait_tick(self, text: str, status: str) -> None:
        await self.message(text).locator(f'[data-testid=tick][data-status="{status}"]').wait_for()
