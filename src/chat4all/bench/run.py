"""One bench run: start (or aim at) a stack, set up, load, measure, write the report."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chat4all.bench.load import Flood, Load, Spike
from chat4all.bench.report import Usage, summarize, write
from chat4all.bench.stack import Stack, process_cpu_s, start_embedded, start_production


async def _measure(urls: list[str], stack: Stack | None, args: dict[str, Any], out: Path) -> dict[str, Any]:
    load = Load(
        urls,
        rate=args["rate"],
        duration=args["duration"],
        conversations=args["conversations"],
        recipients=args["recipients"],
        ramp=args["ramp"],
        warmup=args["warmup"],
        spike=Spike(args["spike_rate"], args["spike_at"], args["spike_duration"]) if args["spike_rate"] > 0 else None,
        flood=Flood(args["flood_groups"], args["flood_members"], args["flood_rate"]) if args["flood_rate"] > 0 else None,
    )
    marks: list[Usage] = []
    try:
        await load.setup()
        with _no_gc_pauses():
            await load.run(drain_s=args["drain"], on_measured=lambda: marks.append(_usage(stack)))
        marks.append(_usage(stack))
        elapsed = marks[1].at - marks[0].at
        rss = stack.usage()[1] if stack else None
    finally:
        await load.close()
    before, after = marks
    result = summarize(
        load,
        server_cpu_s=None,  # from cpu: the measured window's
        server_peak_rss_mb=rss,
        elapsed_s=elapsed,
        cpu=(before, after),
    )
    result["profile"] = args["profile"] or "url"
    result["bench_cpu_s"] = round(process_cpu_s(os.getpid()), 1)
    write(out, load, result)
    return result


def _usage(stack: Stack | None) -> Usage:
    """CPU so far of everything measured: read at the start of the measured load and after the
    drain, the difference is the run's."""
    return Usage(
        at=time.perf_counter(),
        bench=process_cpu_s(os.getpid()),
        server=stack.cpu_by_role() if stack else None,
        engines=stack.engine_cpu() if stack else None,
    )


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
    warmup: float = 0.0,
    spike_rate: float = 0.0,
    spike_at: float = 0.0,
    spike_duration: float = 0.0,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    args = {
        "rate": rate, "duration": duration, "conversations": conversations, "recipients": recipients,
        "ramp": ramp, "drain": drain, "profile": profile,
        "flood_groups": flood_groups, "flood_members": flood_members, "flood_rate": flood_rate,
        "warmup": warmup, "spike_rate": spike_rate, "spike_at": spike_at, "spike_duration": spike_duration,
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
