"""One bench run: start (or aim at) a stack, set up, load, measure, write the report."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chat4all.bench.load import Flood, Load
from chat4all.bench.report import summarize, write
from chat4all.bench.stack import Stack, process_cpu_s, start_embedded, start_production


async def _measure(urls: list[str], stack: Stack | None, args: dict[str, Any], out: Path) -> dict[str, Any]:
    load = Load(
        urls,
        rate=args["rate"],
        duration=args["duration"],
        conversations=args["conversations"],
        recipients=args["recipients"],
        ramp=args["ramp"],
        flood=Flood(args["flood_groups"], args["flood_members"], args["flood_rate"]) if args["flood_rate"] > 0 else None,
    )
    try:
        await load.setup()
        cpu_before = stack.usage()[0] if stack else None
        started = time.perf_counter()
        with _no_gc_pauses():
            await load.run(drain_s=args["drain"])
        elapsed = time.perf_counter() - started
        cpu_after, rss = stack.usage() if stack else (None, None)
    finally:
        await load.close()
    result = summarize(
        load,
        server_cpu_s=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        server_peak_rss_mb=rss,
        elapsed_s=elapsed,
    )
    result["profile"] = args["profile"] or "url"
    import os

    result["bench_cpu_s"] = round(process_cpu_s(os.getpid()), 1)
    write(out, load, result)
    return result


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """The load generator must not stand still: a full collection over the samples it keeps
    took up to 200 ms, and every message scheduled meanwhile was charged to the server. The run
    makes little cyclic garbage, so the collector waits until it is over."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(
    *,
    url: str | None,
    profile: str | None,
    rate: float,
    duration: float,
    conversations: int,
    recipients: int,
    ramp: float,
    drain: float,
    out: Path,
    apis: int,
    routers: int,
    flood_groups: int = 0,
    flood_members: int = 0,
    flood_rate: float = 0.0,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    args = {
        "rate": rate, "duration": duration, "conversations": conversations, "recipients": recipients,
        "ramp": ramp, "drain": drain, "profile": profile,
        "flood_groups": flood_groups, "flood_members": flood_members, "flood_rate": flood_rate,
    }
    flooding = flood_rate > 0
    stack: Stack | None = None
    if url:
        urls = [u.strip().rstrip("/") for u in url.split(",")]
    elif profile in ("production", "ha"):
        stack = start_production(log_dir=out, apis=apis, routers=routers, ha=profile == "ha", flooding=flooding)
        urls = stack.api_urls
    else:
        stack = start_embedded(log_dir=out, flooding=flooding)
        urls = stack.api_urls
    try:
        # uvloop (shipped with uvicorn[standard]) keeps the load generator's own CPU share down
        # on a machine it shares with the servers it measures
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_measure(urls, stack, args, out))
    finally:
        if stack is not None:
            stack.stop()
