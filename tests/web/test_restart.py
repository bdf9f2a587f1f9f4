"""A server restart mid-conversation: the apps reconnect by themselves, catch up, and every
message is shown once, in order, on both sides."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.e2e.processes import embedded_process
from tests.web.conftest import Person


async def test_a_restart_mid_conversation_loses_and_doubles_nothing(browser: Any, tmp_path: Path) -> None:
    with embedded_process(tmp_path) as server:
        server.start()
        await server.ready()
        ann = await Person.open(browser, server.base_url, "ann")
        ben = await Person.open(browser, server.base_url, "ben")
        await ann.sign_up()
        await ben.sign_up()
        await ann.start_chat("ben")
        await ann.send("one")
        await ben.open_chat("ann")
        await ben.message("one").wait_for()
        await ben.send("two")
        await ann.message("two").wait_for()

        # the server goes down hard; both apps say so
        server.kill(signal.SIGKILL)
        await ann.page.locator("[data-testid=connection]:not([data-state=online])").wait_for()
        await ben.page.locator("[data-testid=connection]:not([data-state=online])").wait_for()
        # Ann writes on while it is down: the app keeps retrying the same message ids
        await ann.send("three")
        await ann.send("four")

        server.start()
        await server.ready()
        await ann.online()
        await ben.online()
        for text in ("three", "four"):
            await ben.message(text).wait_for()
            await ann.wait_tick(text, "READ")  # Ben has the chat open
        await ben.send("five")
        await ann.message("five").wait_for()

        expected = ["one", "two", "three", "four", "five"]
        assert await ann.shown_texts() == expected
        assert await ben.shown_texts() == expected
        # after a reload (history from the server alone) the same
        await ben.page.reload()
        await ben.open_chat("ann")
        await ben.message("five").wait_for()
        assert await ben.shown_texts() == expected
        sequence = await ben.page.get_by_test_id("message").evaluate_all("els => els.map(e => Number(e.dataset.seq))")
        assert sequence == sorted(sequence) and len(set(sequence)) == len(expected)
