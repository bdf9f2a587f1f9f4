"""A large file: uploaded with the network cut part-way, resumed from the parts the server has,
downloaded by the other person with the same SHA-256; and an upload that goes on after a reload."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from chat4all.config import Settings
from tests.conftest import RunningServer
from tests.web.conftest import Person

SIZE = int(os.environ.get("CHAT4ALL_TEST_WEB_FILE_MB", "50")) * 1_000_000
PART = 5 * 1024 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"file_part_bytes": PART})


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with path.open("wb") as out:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
            block = hashlib.sha256(block[:64]).digest() * (len(block) // 32)  # no two MiB alike
    return digest.hexdigest()


async def test_a_big_upload_survives_a_cut_network_and_the_download_matches(
    browser: Any, server: RunningServer, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    expected = make_file(source, SIZE)
    parts = -(-SIZE // PART)
    ann = await Person.open(browser, server.base_url, "ann")
    ben = await Person.open(browser, server.base_url, "ben")
    await ann.sign_up()
    await ben.sign_up()
    await ann.start_chat("ben")
    await ann.send("a big one is coming")

    # every part the server stored, by number; after the third the network goes away
    stored: list[int] = []
    cut = {"on": False}

    async def parts_route(route: Any) -> None:
        if cut["on"]:
            await route.abort("internetdisconnected")
            return
        response = await route.fetch()
        if response.ok:
            stored.append(int(route.request.url.split("/parts/")[1].split("?")[0]))
            if len(stored) >= 3 and not cut["on"]:
                cut["on"] = True
                await ann.context.set_offline(True)
        await route.fulfill(response=response)

    await ann.page.route("**/parts/*", parts_route)
    await ann.page.get_by_test_id("file-input").set_input_files(str(source))
    upload = ann.page.get_by_test_id("upload")
    await upload.and_(ann.page.locator('[data-phase="interrupted"]')).wait_for()
    assert 3 <= len(stored) < parts
    progress = await upload.locator("progress").evaluate("p => p.value / p.max")
    assert 0 < progress < 1, progress

    # the network comes back: only the missing parts are sent
    await ann.page.unroute("**/parts/*")
    ann.page.on("requestfinished", lambda request: "/parts/" in request.url and stored.append(
        int(request.url.split("/parts/")[1].split("?")[0])))
    await ann.context.set_offline(False)
    await upload.wait_for(state="detached", timeout=120_000)  # done: the tray empties
    assert sorted(stored) == list(range(1, parts + 1)), "a stored part was sent again, or one is missing"

    # Ben sees the file in the conversation and downloads it: the same bytes
    await ben.open_chat("ann")
    link = ben.page.get_by_test_id("download").filter(has_text="big.bin")
    await link.wait_for()
    assert await ben.page.get_by_test_id("file").get_attribute("data-sha256") == expected
    async with ben.page.expect_download() as info:
        await link.click()
    download = await info.value
    saved = tmp_path / "downloaded.bin"
    await download.save_as(saved)
    digest = hashlib.sha256()
    with saved.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == expected


async def test_an_upload_goes_on_after_a_reload_and_an_image_is_previewed(
    browser: Any, server: RunningServer, tmp_path: Path
) -> None:
    ann = await Person.open(browser, server.base_url, "ann")
    ben = await Person.open(browser, server.base_url, "ben")
    await ann.sign_up()
    await ben.sign_up()
    await ann.start_chat("ben")

    # a file of 3 parts: the first goes through, then the page is reloaded mid-upload
    source = tmp_path / "reloaded.bin"
    expected = make_file(source, 2 * PART + 1000)
    held: list[Any] = []

    async def hold_after_first(route: Any) -> None:
        if "/parts/1?" in route.request.url:
            await route.continue_()
        else:
            held.append(route)  # never answered: the reload cuts them

    await ann.page.route("**/parts/*", hold_after_first)
    await ann.page.get_by_test_id("file-input").set_input_files(str(source))
    await ann.page.wait_for_function("() => chat4all.uploads.length === 1 && chat4all.uploads[0].progress.sent >= %d" % PART)
    await ann.page.unroute("**/parts/*")
    await ann.page.reload()
    await ann.online()
    # the app found the upload in IndexedDB and finished it; the message reaches Ben
    await ben.open_chat("ann")
    await ben.page.get_by_test_id("download").filter(has_text="reloaded.bin").wait_for()
    assert await ben.page.get_by_test_id("file").get_attribute("data-sha256") == expected

    # an image is shown, not just linked
    png = tmp_path / "dot.png"
    png.write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5e4a5b40000000049454e44ae426082"))
    await ann.page.get_by_test_id("file-input").set_input_files(str(png))
    preview = ben.page.locator("img.preview[alt='dot.png']")
    await preview.wait_for()
    assert await preview.evaluate("img => img.complete && img.naturalWidth === 1")


async def test_pause_stops_sending_and_resume_sends_only_what_is_missing(
    browser: Any, server: RunningServer, tmp_path: Path
) -> None:
    ann = await Person.open(browser, server.base_url, "ann")
    ben = await Person.open(browser, server.base_url, "ben")
    await ann.sign_up()
    await ben.sign_up()
    await ann.start_chat("ben")
    source = tmp_path / "paused.bin"
    expected = make_file(source, 4 * PART)
    stored: list[int] = []
    held: list[Any] = []

    async def first_then_hold(route: Any) -> None:
        number = int(route.request.url.split("/parts/")[1].split("?")[0])
        if number == 1 and not stored:
            response = await route.fetch()
            stored.append(number)
            await route.fulfill(response=response)
        else:
            held.append(route)  # in flight until Pause aborts it

    await ann.page.route("**/parts/*", first_then_hold)
    await ann.page.get_by_test_id("file-input").set_input_files(str(source))
    upload = ann.page.get_by_test_id("upload")
    await ann.page.wait_for_function("() => chat4all.uploads[0]?.progress.sent >= %d" % PART)
    await upload.get_by_test_id("pause").click()
    await upload.and_(ann.page.locator('[data-phase="paused"]')).wait_for()
    await ann.page.unroute("**/parts/*")
    sent_while_paused: list[str] = []
    ann.page.on("request", lambda r: "/parts/" in r.url and sent_while_paused.append(r.url))
    await ann.page.wait_for_timeout(500)  # a paused upload sends nothing, however long it waits
    assert sent_while_paused == []
    assert await upload.get_by_test_id("upload-percent").inner_text() == "paused 25%"

    await upload.get_by_test_id("resume").click()
    await upload.wait_for(state="detached")
    resumed = sorted(int(u.split("/parts/")[1].split("?")[0]) for u in sent_while_paused)
    assert resumed == [2, 3, 4], resumed  # part 1 was stored: not sent again
    await ben.open_chat("ann")
    await ben.page.get_by_test_id("download").filter(has_text="paused.bin").wait_for()
    assert await ben.page.get_by_test_id("file").get_attribute("data-sha256") == expected
