"""CallbackTransport over httpx: webhook callbacks leave through here, and only to allowed places.

Every attempt resolves the host again and refuses it if any address it resolves to is refused
by the ``EgressPolicy`` (``domain/egress.py``); the request then goes to the address that was
checked — the URL carries the IP, the ``Host`` header and TLS SNI/certificate check carry the
name — so a DNS answer that changes between the check and the connection (rebinding) cannot
steer it elsewhere. Redirects are not followed, proxies from the environment are ignored, and
connections are not kept alive (a pooled connection is keyed by IP, not by the name it was
verified for). The response body is never read.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import httpx

from chat4all import __version__
from chat4all.domain.egress import (
    EgressPolicy,
    IPAddress,
    Target,
    UrlNotAllowed,
    literal_address,
    parse_url,
)
from chat4all.domain.errors import InvalidInput

USER_AGENT = f"Chat4All-Webhooks/{__version__}"
RESOLVE_TIMEOUT_S = 5.0


class HttpCallbackTransport:
    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=0),
            )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def check(self, url: str) -> None:
        target = parse_url(url)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                await self._resolve(target)
        except TimeoutError:
            raise UrlNotAllowed(f"the host {target.host!r} could not be resolved in time") from None

    async def _resolve(self, target: Target) -> IPAddress:
        """The address to connect to, once every address the host resolves to is allowed."""
        literal = literal_address(target.host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                raise UrlNotAllowed(f"the host {target.host!r} does not resolve") from exc
            addresses = list(dict.fromkeys(_address(str(info[4][0])) for info in infos))
        if not addresses:
            raise UrlNotAllowed(f"the host {target.host!r} does not resolve")
        for address in addresses:
            reason = self._policy.refusal(address)
            if reason is not None:
                raise UrlNotAllowed(
                    f"the URL resolves to a {reason} address, which webhooks may not call",
                    details={"host": target.host, "address": str(address), "kind": reason},
                )
        return addresses[0]

    async def post(
        self, url: str, *, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> tuple[int | None, str | None]:
        if self._client is None:
            raise RuntimeError("HttpCallbackTransport.start() was not called")
        try:
            target = parse_url(url)
        except InvalidInput as exc:  # stored before a rule changed
            return None, f"refused: {exc.message}"
        request_headers = {
            **headers,
            "Host": urlsplit(target.url).netloc,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with asyncio.timeout(timeout_s):  # one deadline for resolving, connecting and answering
                address = await self._resolve(target)
                host = f"[{address}]" if address.version == 6 else str(address)
                request = self._client.build_request(
                    "POST",
                    f"{target.scheme}://{host}:{target.port}{target.target}",
                    content=body,
                    headers=request_headers,
                    timeout=timeout_s,
                    extensions=extensions,
                )
                response = await self._client.send(request, stream=True)
                await response.aclose()
        except UrlNotAllowed as exc:
            return None, f"refused: {exc.message}"
        except (TimeoutError, httpx.TimeoutException):
            return None, f"timed out after {timeout_s:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return response.status_code, None


def _address(text: str) -> IPAddress:
    address = literal_address(text.partition("%")[0])  # drop an IPv6 zone id
    if address is None:  # pragma: no cover - getaddrinfo returns numeric hosts
        raise UrlNotAllowed(f"unexpected address {text!r}")
    return address
