"""A fake Telegram Bot API on 127.0.0.1 for the tests: records every call, answers like the
real one (``{"ok": true, "result": ...}``), and fails or throttles on demand.

    async with running_fake_telegram() as tg:
        tg.fail("sendMessage", status=502, times=2)       # the next two sendMessage calls fail
        tg.throttle("sendMessage", retry_after=1)          # the next one answers 429, retry_after 1
        tg.outage = 503                                    # every call fails until reset to None
        tg.blocked.add("4242")                             # this chat blocked the bot: 403
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "123456:TEST-token"


@dataclass
class Call:
    method: str
    token: str
    fields: dict[str, Any]  # JSON body, or the form fields of a multipart call
    files: dict[str, tuple[str, bytes, str]]  # name -> (filename, bytes, content type)
    at: float  # time.monotonic() when it arrived


@dataclass
class FakeTelegram:
    base_url: str = ""
    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    outage: int | None = None  # every call answers this status while set
    blocked: set[str] = field(default_factory=set)
    _next_id: int = 100

    def fail(self, method: str, *, status: int = 500, times: int = 1, description: str = "Internal Server Error") -> None:
        body = {"ok": False, "error_code": status, "description": description}
        self.script.setdefault(method, []).extend([(status, body)] * times)

    def throttle(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        body = {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        }
        self.script.setdefault(method, []).extend([(429, body)] * times)

    def to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def texts(self) -> list[str]:
        return [c.fields["text"] for c in self.to("sendMessage")]

    async def count(self, method: str, n: int) -> list[Call] | None:
        """For ``wait_until``: the calls of ``method`` once there are at least ``n``."""
        got = self.to(method)
        return got if len(got) >= n else None

    async def handle(self, request: Request) -> JSONResponse:
        token, method = request.path_params["token"], request.path_params["method"]
        fields: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes, str]] = {}
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form()
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    files[key] = (value.filename or "", await value.read(), value.content_type or "")
                else:
                    fields[key] = value
        elif await request.body():
            fields = await request.json()
        self.calls.append(Call(method, token, fields, files, time.monotonic()))
        if token != self.token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        if self.outage is not None:
            return JSONResponse({"ok": False, "error_code": self.outage, "description": "Bad Gateway"}, status_code=self.outage)
        if self.script.get(method):
            status, body = self.script[method].pop(0)
            return JSONResponse(body, status_code=status)
        return JSONResponse(self._answer(method, fields), status_code=self._status(method, fields))

    def _status(self, method: str, fields: dict[str, Any]) -> int:
        if method in ("sendMessage", "sendDocument") and str(fields.get("chat_id")) in self.blocked:
            return 403
        return 200 if method in ("getMe", "setWebhook", "sendMessage", "sendDocument") else 404

    def _answer(self, method: str, fields: dict[str, Any]) -> dict[str, Any]:
        status = self._status(method, fields)
        if status == 403:
            return {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        if status == 404:
            return {"ok": False, "error_code": 404, "description": "Not Found"}
        if method == "getMe":
            return {"ok": True, "result": {"id": 123456, "is_bot": True, "first_name": "Chat4All", "username": "chat4all_bot"}}
        if method == "setWebhook":
            return {"ok": True, "result": True, "description": "Webhook was set"}
        self._next_id += 1
        chat = {"id": int(fields["chat_id"]) if str(fields["chat_id"]).lstrip("-").isdigit() else fields["chat_id"]}
        result: dict[str, Any] = {"message_id": self._next_id, "date": int(time.time()), "chat": chat}
        if method == "sendMessage":
            result["text"] = fields.get("text")
        else:
            result["document"] = {"file_id": f"doc{self._next_id}"}
            if "caption" in fields:
                result["caption"] = fields["caption"]
        return {"ok": True, "result": result}


@asynccontextmanager
async def running_fake_telegram(token: str = TOKEN) -> AsyncIterator[FakeTelegram]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    fake = FakeTelegram(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", token=token)
    app = Starlette(routes=[Route("/bot{token}/{method}", fake.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        await task


def update(chat_id: int | str, text: str, *, message_id: int = 1, reply_to: int | None = None, update_id: int = 1) -> dict:
    """A Telegram Update with a text message from a private chat."""
    message: dict[str, Any] = {
        "message_id": message_id,
        "from": {"id": int(chat_id), "is_bot": False, "first_name": "Bob"},
        "chat": {"id": int(chat_id), "type": "private", "first_name": "Bob"},
        "date": int(time.time()),
        "text": text,
    }
    if reply_to is not None:
        message["reply_to_message"] = {"message_id": reply_to, "chat": message["chat"], "date": int(time.time())}
    return {"update_id": update_id, "message": message}
