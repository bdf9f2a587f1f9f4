"""Screenshots of the web app for docs/web.md (docs/img/web-*.png): desktop and phone width,
light and dark. Run against a fresh server: `.venv/bin/python scripts/web-screenshots.py URL`.
It signs up three people with a made-up tag, so it can run against any server."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import struct
import sys
import zlib
from pathlib import Path

from playwright.async_api import async_playwright

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
PASSWORD = "correct-horse-battery"


def png(width: int, height: int) -> bytes:
    """A small gradient picture to share (an image preview in the shots)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((40 + x * 180 // width, 70 + y * 120 // height, 200)) for x in range(width))
        for y in range(height)
    )
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


async def sign_up(page, name: str) -> None:
    await page.get_by_role("button", name="Create an account").click()
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await page.locator("[data-testid=connection][data-state=online]").wait_for()


async def main(url: str) -> None:
    tag = secrets.token_hex(2)
    ana, ben, cleo = f"ana{tag}", f"ben{tag}", f"cleo{tag}"
    picture = Path("/tmp") / f"sunset-{tag}.png"
    picture.write_bytes(png(320, 180))
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium"))
        contexts = {}
        for name in (ana, ben, cleo):
            context = await browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
            page = await context.new_page()
            await page.goto(url)
            if name == ana:
                await page.screenshot(path=OUT / "web-signin-light.png")
            await sign_up(page, name)
            contexts[name] = page
        a, b, c = contexts[ana], contexts[ben], contexts[cleo]
        await a.get_by_test_id("new-chat").click()
        await a.get_by_test_id("new-members").fill(cleo)
        await a.get_by_role("button", name="Start").click()
        await a.get_by_test_id("compose").fill("Are we still on for Friday?")
        await a.keyboard.press("Enter")
        await a.get_by_test_id("new-chat").click()
        await a.get_by_test_id("new-members").fill(ben)
        await a.get_by_role("button", name="Start").click()
        await a.get_by_test_id("compose").fill("Hi Ben! Did you get the photos from the trip?")
        await a.keyboard.press("Enter")
        await b.locator(f'[data-testid=conversation][data-title="{ana}"]').click()
        await b.get_by_test_id("compose").fill("Not yet, send them over!")
        await b.keyboard.press("Enter")
        await a.get_by_test_id("file-input").set_input_files(str(picture))
        await b.locator("img.preview").wait_for()
        await b.get_by_test_id("compose").fill("Beautiful! Where was that?\nThe colours are amazing.")
        await b.keyboard.press("Enter")
        await a.get_by_test_id("compose").fill("Cabo da Roca, just before sunset")
        await a.keyboard.press("Enter")
        await a.locator('[data-testid=tick][data-status="READ"]').last.wait_for()
        await a.wait_for_timeout(500)
        for theme in ("light", "dark"):
            await a.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
            await a.screenshot(path=OUT / f"web-chat-desktop-{theme}.png")
        await a.evaluate("document.documentElement.dataset.theme = 'light'")
        await a.goto(url + "#/settings")
        await a.get_by_role("heading", name="Channels").wait_for()
        await a.screenshot(path=OUT / "web-channels-light.png")
        # phone width: the inbox, then the conversation
        phone = await browser.new_context(viewport={"width": 390, "height": 760}, device_scale_factor=1)
        page = await phone.new_page()
        await page.goto(url)
        await page.get_by_label("Username").fill(ben)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.locator("[data-testid=connection][data-state=online]").wait_for()
        for theme in ("light", "dark"):
            await page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
            await page.goto(url + "#/")
            await page.wait_for_timeout(300)
            await page.screenshot(path=OUT / f"web-inbox-phone-{theme}.png")
            await page.locator(f'[data-testid=conversation][data-title="{ana}"]').click()
            await page.locator("img.preview").wait_for()
            await page.wait_for_timeout(300)
            await page.screenshot(path=OUT / f"web-chat-phone-{theme}.png")
        await browser.close()
    picture.unlink()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/"))
