"""A small typed async client of the public API, used by the tests, demos and the bench.

    async with Chat4AllClient("http://127.0.0.1:8080") as c:
        await c.register("alice", "secret-password")
        await c.login("alice", "secret-password")
        conv = await c.create_conversation("private", ["bob"])
        await c.send_text(conv["conversation_id"], "hi")
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import websockets

WS_SUBPROTOCOL = "chat4all.v1"


class ApiError(Exception):
    """An error answer of the API, in the contract's shape."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class Chat4AllClient:
    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 10.0, **httpx_kwargs: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self.access_token = token
        self.refresh_token: str | None = None
        self._verify = httpx_kwargs.get("verify", True)  # the same trust for the WebSocket
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, **httpx_kwargs)

    async def __aenter__(self) -> Chat4AllClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # plumbing --------------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if self.access_token and "authorization" not in {k.lower() for k in headers}:
            headers["Authorization"] = f"Bearer {self.access_token}"
        response = await self._http.request(method, path, headers=headers, **kwargs)
        if response.status_code not in expect:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # auth ------------------------------------------------------------------------------------

    async def register(self, username: str, password: str) -> dict[str, Any]:
        return await self.request("POST", "/v1/auth/register", json={"username": username, "password": password}, expect=(201,))

    async def login(self, username: str, password: str) -> dict[str, Any]:
        tokens = await self.request("POST", "/v1/auth/token", json={"username": username, "password": password})
        self._keep(tokens)
        return tokens

    async def refresh(self, refresh_token: str | None = None) -> dict[str, Any]:
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token or self.refresh_token}
        tokens = await self.request("POST", "/v1/auth/token", json=body)
        self._keep(tokens)
        return tokens

    async def logout(self) -> None:
        """Ends this client's session (POST /v1/auth/logout)."""
        body = {"refresh_token": self.refresh_token} if self.refresh_token else None
        await self.request("POST", "/v1/auth/logout", json=body, expect=(204,))

    async def change_password(self, current_password: str, new_password: str) -> dict[str, Any]:
        """Ends every session of the user and keeps the new one this answers with."""
        body = {"current_password": current_password, "new_password": new_password}
        tokens = await self.request("POST", "/v1/auth/password", json=body)
        self._keep(tokens)
        return tokens

    def _keep(self, tokens: dict[str, Any]) -> None:
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]

    # users -----------------------------------------------------------------------------------

    async def me(self) -> dict[str, Any]:
        return await self.request("GET", "/v1/users/me")

    async def set_channel(self, channel: str, external_id: str) -> dict[str, Any]:
        """Claims the identity: ``status`` is ``linked``, or ``pending`` with the ``code`` the user
        sends from that identity to the service's account on the channel."""
        return await self.request(
            "PUT", f"/v1/users/me/channels/{channel}", json={"external_id": external_id}, expect=(200, 202)
        )

    async def delete_channel(self, channel: str) -> None:
        await self.request("DELETE", f"/v1/users/me/channels/{channel}", expect=(204,))

    async def presence(self, username: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/presence/{username}")

    # conversations ---------------------------------------------------------------------------

    async def create_conversation(
        self, type: str, members: list[str], *, name: str | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"type": type, "members": members}
        if name is not None:
            body["name"] = name
        if metadata is not None:
            body["metadata"] = metadata
        return await self.request("POST", "/v1/conversations", json=body, expect=(201,))

    async def list_conversations(self, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return await self.request("GET", "/v1/conversations", params=params)

    async def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/conversations/{conversation_id}")

    async def conversation_messages(self, conversation_id: str, *, since: int = 0, limit: int = 100) -> dict[str, Any]:
        return await self.request(
            "GET", f"/v1/conversations/{conversation_id}/messages", params={"since": since, "limit": limit}
        )

    # messages --------------------------------------------------------------------------------

    async def send(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/messages; 202 for a new message, 200 for a duplicate message_id. A body with a
        message_id goes with it as ``Idempotency-Key``: the gateway may then retry it on another
        API node, and the repeat is a duplicate."""
        headers = {"Idempotency-Key": str(body["message_id"])} if body.get("message_id") else {}
        return await self.request("POST", "/v1/messages", json=body, expect=(200, 202), headers=headers)

    async def send_text(self, conversation_id: str, text: str, **fields: Any) -> dict[str, Any]:
        return await self.send({"conversation_id": conversation_id, "payload": {"type": "text", "text": text}, **fields})

    async def get_message(self, message_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/messages/{message_id}")

    async def message_status(self, message_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/messages/{message_id}/status")

    async def ack(self, message_ids: list[str], status: str = "delivered") -> None:
        await self.request("POST", "/v1/messages/ack", json={"message_ids": message_ids, "status": status}, expect=(204,))

    # API v2: conversations -------------------------------------------------------------------

    async def v2_inbox(self, *, limit: int = 20, cursor: str | None = None, since: str | None = None) -> dict[str, Any]:
        """GET /v2/conversations → {items: [summary], next_cursor, sync_token}, by last activity."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if since:
            params["since"] = since
        return await self.request("GET", "/v2/conversations", params=params)

    async def v2_create_conversation(
        self,
        type: str,
        members: list[str],
        *,
        name: str | None = None,
        topic: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"type": type, "members": members}
        for key, value in (("name", name), ("topic", topic), ("metadata", metadata)):
            if value is not None:
                body[key] = value
        return await self.request("POST", "/v2/conversations", json=body, expect=(201,))

    async def v2_conversation(self, conversation_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v2/conversations/{conversation_id}")

    async def v2_update_conversation(self, conversation_id: str, **changes: str | None) -> dict[str, Any]:
        """PATCH name and/or topic (owner or admin)."""
        return await self.request("PATCH", f"/v2/conversations/{conversation_id}", json=changes)

    async def v2_add_members(self, conversation_id: str, usernames: list[str]) -> dict[str, Any]:
        return await self.request("POST", f"/v2/conversations/{conversation_id}/members", json={"usernames": usernames})

    async def v2_remove_member(self, conversation_id: str, username: str) -> None:
        await self.request("DELETE", f"/v2/conversations/{conversation_id}/members/{username}", expect=(204,))

    async def v2_leave(self, conversation_id: str) -> None:
        await self.request("POST", f"/v2/conversations/{conversation_id}/leave", expect=(204,))

    async def v2_set_role(self, conversation_id: str, username: str, role: str) -> dict[str, Any]:
        return await self.request(
            "PUT", f"/v2/conversations/{conversation_id}/members/{username}/role", json={"role": role}
        )

    async def v2_messages(
        self,
        conversation_id: str,
        *,
        limit: int = 50,
        before: int | None = None,
        after: int | None = None,
        around: str | None = None,
    ) -> dict[str, Any]:
        """GET /v2/conversations/{id}/messages → {items (ascending), prev_cursor, next_cursor}."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("before", before), ("after", after), ("around", around)):
            if value is not None:
                params[key] = value
        return await self.request("GET", f"/v2/conversations/{conversation_id}/messages", params=params)

    async def v2_mark_read(self, conversation_id: str, up_to_sequence: int) -> dict[str, Any]:
        """POST /v2/conversations/{id}/read → {conversation_id, read_up_to, unread_count}."""
        return await self.request(
            "POST", f"/v2/conversations/{conversation_id}/read", json={"up_to_sequence": up_to_sequence}
        )

    # API v2: messages ------------------------------------------------------------------------

    async def v2_send(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Idempotency-Key": str(body["message_id"])} if body.get("message_id") else {}
        return await self.request("POST", "/v2/messages", json=body, expect=(200, 202), headers=headers)

    async def v2_send_text(self, conversation_id: str, text: str, **fields: Any) -> dict[str, Any]:
        return await self.v2_send({"conversation_id": conversation_id, "payload": {"type": "text", "text": text}, **fields})

    async def v2_message(self, message_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v2/messages/{message_id}")

    async def v2_edit_message(
        self, message_id: str, *, text: str | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if text is not None:
            body["payload"] = {"type": "text", "text": text}
        if metadata is not None:
            body["metadata"] = metadata
        return await self.request("PATCH", f"/v2/messages/{message_id}", json=body)

    async def v2_delete_message(self, message_id: str) -> None:
        await self.request("DELETE", f"/v2/messages/{message_id}", expect=(204,))

    async def v2_message_versions(self, message_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v2/messages/{message_id}/versions")

    async def v2_message_status(self, message_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v2/messages/{message_id}/status")

    # files -----------------------------------------------------------------------------------

    async def typing(self, conversation_id: str, state: str = "start") -> None:
        """v2: the HTTP twin of the socket's ``typing`` frame."""
        await self.request("POST", f"/v2/conversations/{conversation_id}/typing", json={"state": state}, expect=(204,))

    async def initiate_upload(
        self, filename: str, size: int, *, content_type: str | None = None, sha256: str | None = None
    ) -> dict[str, Any]:
        """POST /v1/files/initiate → {file_id, part_size, parts:[{part_number, url}], expires_at}."""
        body: dict[str, Any] = {"filename": filename, "size": size}
        if content_type is not None:
            body["content_type"] = content_type
        if sha256 is not None:
            body["sha256"] = sha256
        return await self.request("POST", "/v1/files/initiate", json=body, expect=(201,))

    async def upload_state(self, file_id: str) -> dict[str, Any]:
        """GET /v1/files/{id}/upload → the stored parts and fresh URLs for the missing ones."""
        return await self.request("GET", f"/v1/files/{file_id}/upload")

    async def complete_upload(self, file_id: str, sha256: str, *, timeout: float | None = None) -> dict[str, Any]:
        """POST /v1/files/complete; verifying a big file takes a while, hence the own timeout."""
        body = {"file_id": file_id, "sha256": sha256}
        return await self.request("POST", "/v1/files/complete", json=body, timeout=timeout or 600.0)

    async def get_file(self, file_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/files/{file_id}")

    async def send_file(self, conversation_id: str, file_id: str, *, caption: str | None = None, **fields: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": "file", "file_id": file_id}
        if caption is not None:
            payload["caption"] = caption
        return await self.send({"conversation_id": conversation_id, "payload": payload, **fields})

    # websocket -------------------------------------------------------------------------------

    @asynccontextmanager
    async def websocket(
        self, *, auth: str = "subprotocol", version: str = "v1", **connect_kwargs: Any
    ) -> AsyncIterator[Socket]:
        """The socket /v1/ws (or /v2/ws with ``version="v2"``), authenticated by the
        ``Sec-WebSocket-Protocol`` header (``auth="subprotocol"``, as a browser would) or by a
        first ``auth`` frame (``auth="frame"``); the token never goes into the URL, where logs
        and proxies see it."""
        if version not in ("v1", "v2"):
            raise ValueError(f"version must be 'v1' or 'v2', not {version!r}")
        url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + f"/{version}/ws"
        if auth == "subprotocol":
            subprotocols = [WS_SUBPROTOCOL, f"bearer.{self.access_token}"]
        elif auth == "frame":
            subprotocols = [WS_SUBPROTOCOL]
        else:
            raise ValueError(f"auth must be 'subprotocol' or 'frame', not {auth!r}")
        if url.startswith("wss://"):
            connect_kwargs.setdefault("ssl", _ssl_context(self._verify))
        async with websockets.connect(
            url, subprotocols=subprotocols, max_size=2**22, **connect_kwargs  # type: ignore[arg-type]
        ) as ws:
            socket = Socket(ws)
            if auth == "frame":
                await socket.send({"type": "auth", "token": self.access_token})
            yield socket


class Socket:
    """A client WebSocket speaking the frames of SPEC §2."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self._ws.recv(), timeout)
        return orjson.loads(raw)

    async def send(self, frame: dict[str, Any]) -> None:
        await self._ws.send(orjson.dumps(frame).decode())

    async def ack(self, message_ids: list[str]) -> None:
        await self.send({"type": "ack", "message_ids": message_ids})

    async def read(self, message_ids: list[str]) -> None:
        await self.send({"type": "read", "message_ids": message_ids})

    async def typing(self, conversation_id: str, state: str = "start") -> None:
        """v2: tells the conversation's other members you started (or stopped) typing."""
        await self.send({"type": "typing", "conversation_id": conversation_id, "state": state})

    async def ping(self) -> None:
        await self.send({"type": "ping"})


def _ssl_context(verify: Any) -> ssl.SSLContext:
    """httpx's ``verify`` (True, False, a CA file path or an SSLContext) as an SSLContext."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        error = body["error"]
        if isinstance(error, str):  # the token endpoint answers as OAuth2 does, with the platform's code beside
            return ApiError(response.status_code, body.get("code", error), body.get("error_description", error), body.get("details"))
        return ApiError(response.status_code, error["code"], error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, "http_error", response.text[:200])
