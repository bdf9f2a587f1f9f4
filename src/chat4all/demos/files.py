"""``chat4all demo files``: R5 end to end, with a big file over a link that breaks.

Alice uploads a generated file (1.8 GB by default) to a group: the link breaks part-way (the
parts in flight are cut off mid-body), she asks the upload state which parts are stored and
sends the rest through fresh URLs, completes (the server verifies the SHA-256), and sends the
file in a message. Bob receives the message on his WebSocket, and he and Carol each download
the file and check its SHA-256. Throughputs and the server's peak RSS are printed.

Without ``--url`` a server is started as a subprocess (embedded profile, in a temporary data
directory, or on S3 with ``--blob-url``), so its peak RSS (VmHWM) can be read from /proc.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chat4all.client import Chat4AllClient

CHUNK = 1024 * 1024
PASSWORD = "demo-password-123"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str) -> int:
    """'1.8GB' → 1_800_000_000; KB/MB/GB are decimal, KiB/MiB/GiB binary."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 1.8GB, 500MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass
class DemoOptions:
    size: int
    url: str | None = None
    blob_url: str | None = None
    server_pid: int | None = None
    parallel: int = 4
    break_at: float = 0.4  # the fraction of the bytes sent when the link breaks
    workdir: Path | None = None


class LinkBroken(Exception):
    pass


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def rate(n: float, seconds: float) -> str:
    return f"{n / 1e6 / max(seconds, 1e-9):,.0f} MB/s"


async def run_demo(options: DemoOptions, echo: Callable[[str], None] = print) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="chat4all-demo-", dir=options.workdir))
    server: asyncio.subprocess.Process | None = None
    try:
        url, pid = options.url, options.server_pid
        if url is None:
            server, url = await _start_server(workdir, options.blob_url)
            pid = server.pid
            blobs = options.blob_url.split("?")[0] if options.blob_url else "local disk"  # no keys in the output
            echo(f"server: started `chat4all serve all` (pid {pid}) at {url}, blobs: {blobs}")
        return await _scenario(options, url, pid, workdir, echo)
    finally:
        if server is not None:
            server.terminate()
            await asyncio.wait_for(server.wait(), timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)  # the generated file and the server's data


async def _scenario(
    options: DemoOptions, url: str, pid: int | None, workdir: Path, echo: Callable[[str], None]
) -> dict[str, Any]:
    report: dict[str, Any] = {"size": options.size}
    baseline = report["server_peak_rss_before"] = _peak_rss(pid) if pid is not None else None
    if baseline is not None:
        echo(f"server: peak RSS before the demo {mb(baseline)}")
    tag = secrets.token_hex(3)
    users = {name: await _user(url, f"{name}-{tag}") for name in ("alice", "bob", "carol")}
    alice_c, bob_c = users["alice"], users["bob"]
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(120, connect=10), limits=httpx.Limits(max_connections=options.parallel * 2)
    )
    try:
        group = await alice_c.create_conversation("group", [f"bob-{tag}", f"carol-{tag}"], name="holiday")
        path = workdir / "holiday.mp4"
        started = time.perf_counter()
        digest = await asyncio.to_thread(_generate, path, options.size)
        echo(f"file: {mb(options.size)} generated in {time.perf_counter() - started:.1f} s, sha256 {digest[:16]}…")

        ticket = await alice_c.initiate_upload(path.name, options.size, content_type="video/mp4", sha256=digest)
        part_size = ticket["part_size"]
        echo(f"initiate: file {ticket['file_id']}, {len(ticket['parts'])} parts of {part_size / 2**20:g} MiB")

        sent = _Progress(break_after=int(options.size * options.break_at))
        started = time.perf_counter()
        stored = await _put_parts(http, path, part_size, ticket["parts"], sent, options.parallel)
        took = time.perf_counter() - started
        echo(
            f"upload: the link broke after {mb(sent.bytes)} sent in {took:.1f} s ({rate(sent.bytes, took)}); "
            f"{stored} parts finished, {sent.cut} cut off mid-part"
        )

        state = await alice_c.upload_state(ticket["file_id"])
        echo(
            f"resume: the upload state lists {len(state['uploaded_parts'])} parts stored, {len(state['missing_parts'])} missing (fresh URLs)"
        )
        resumed = _Progress(break_after=None)
        started = time.perf_counter()
        await _put_parts(http, path, part_size, state["missing_parts"], resumed, options.parallel)
        took = time.perf_counter() - started
        report["upload_resume_mb_s"] = resumed.bytes / 1e6 / took
        echo(f"resume: {mb(resumed.bytes)} in {took:.1f} s ({rate(resumed.bytes, took)})")

        started = time.perf_counter()
        done = await alice_c.complete_upload(ticket["file_id"], digest, timeout=1800)
        took = time.perf_counter() - started
        report["complete_s"] = took
        echo(
            f"complete: status {done['status']}, SHA-256 verified by the server in {took:.1f} s ({rate(options.size, took)})"
        )

        async with bob_c.websocket() as socket_:
            started = time.perf_counter()
            await alice_c.send_file(group["conversation_id"], ticket["file_id"], caption="our holiday")
            frame = await socket_.receive(timeout=30)
            while frame["type"] != "message":
                frame = await socket_.receive(timeout=30)
        payload = frame["message"]["payload"]
        echo(
            f"message: bob received it in {(time.perf_counter() - started) * 1000:.0f} ms: {payload['filename']}, {mb(payload['size'])}"
        )

        for name in ("bob", "carol"):
            described = await users[name].get_file(ticket["file_id"])
            started = time.perf_counter()
            got, size = await _download(http, described["download_url"])
            took = time.perf_counter() - started
            ok = got == digest and size == options.size
            report.setdefault("download_mb_s", []).append(size / 1e6 / took)
            echo(
                f"download ({name}): {mb(size)} in {took:.1f} s ({rate(size, took)}), sha256 {'matches' if ok else 'DIFFERS'}"
            )
            if not ok:
                raise RuntimeError("the downloaded file differs from the uploaded one")
        report["sha256_ok"] = True

        if pid is not None:
            peak = _peak_rss(pid)
            report["server_peak_rss"] = peak
            if peak is not None:
                grew = f", +{mb(peak - baseline)} during the demo" if baseline is not None else ""
                echo(f"server peak RSS (VmHWM): {mb(peak)}{grew} = {peak / options.size:.1%} of the file size")
        return report
    finally:
        await http.aclose()
        for client in users.values():
            await client.close()


async def _user(url: str, username: str) -> Chat4AllClient:
    client = Chat4AllClient(url, timeout=60)
    await client.register(username, PASSWORD)
    await client.login(username, PASSWORD)
    return client


class _Progress:
    def __init__(self, *, break_after: int | None) -> None:
        self.bytes = 0
        self.cut = 0
        self._break_after = break_after
        self.broken = False

    def add(self, n: int) -> None:
        self.bytes += n
        if self._break_after is not None and self.bytes >= self._break_after:
            self.broken = True


async def _put_parts(
    http: httpx.AsyncClient, path: Path, part_size: int, parts: list[dict[str, Any]], progress: _Progress, parallel: int
) -> int:
    """PUTs the parts, ``parallel`` at a time, streaming each from the file in 1 MiB chunks.
    Returns how many finished; when the progress says the link broke, the parts in flight are
    cut off mid-body and no new one starts."""
    queue = list(reversed(parts))
    finished = 0
    file_size = (await asyncio.to_thread(path.stat)).st_size

    async def worker() -> None:
        nonlocal finished
        while queue and not progress.broken:
            part = queue.pop()
            offset = (part["part_number"] - 1) * part_size
            length = min(part_size, file_size - offset)
            try:
                response = await http.put(
                    part["url"], content=_read(path, offset, length, progress), headers={"Content-Length": str(length)}
                )
            except (LinkBroken, httpx.TransportError):
                progress.cut += 1
                return
            if response.status_code != 200:
                raise RuntimeError(f"part {part['part_number']} refused: {response.status_code} {response.text[:200]}")
            finished += 1

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return finished


async def _read(path: Path, offset: int, length: int, progress: _Progress) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        f.seek(offset)
        remaining = length
        while remaining:
            if progress.broken:
                raise LinkBroken()
            chunk = await asyncio.to_thread(f.read, min(CHUNK, remaining))
            remaining -= len(chunk)
            progress.add(len(chunk))
            yield chunk
    finally:
        f.close()


async def _download(http: httpx.AsyncClient, url: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    async with http.stream("GET", url) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes(CHUNK):
            size += len(chunk)
            await asyncio.to_thread(digest.update, chunk)
    return digest.hexdigest(), size


def _generate(path: Path, size: int) -> str:
    """Random (incompressible) bytes, hashed as they are written."""
    digest = hashlib.sha256()
    block = 4 * CHUNK
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            data = os.urandom(min(block, remaining))
            digest.update(data)
            f.write(data)
            remaining -= len(data)
    return digest.hexdigest()


def _peak_rss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


async def _start_server(workdir: Path, blob_url: str | None) -> tuple[asyncio.subprocess.Process, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT4ALL_")}
    env.update(
        CHAT4ALL_DATA_DIR=str(workdir / "data"),
        CHAT4ALL_PORT=str(port),
        CHAT4ALL_ACCESS_LOG="false",
        CHAT4ALL_LOG_LEVEL="WARNING",
    )
    if blob_url:
        env["CHAT4ALL_BLOB_URL"] = blob_url
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "chat4all", "serve", "all", env=env)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + 60
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the server exited with {process.returncode}")
            try:
                if (await http.get(f"{url}/health/ready")).status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                process.terminate()
                raise RuntimeError("the server did not become ready within 60 s")
            await asyncio.sleep(0.2)
