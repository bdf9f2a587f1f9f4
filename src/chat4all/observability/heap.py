"""The garbage collector of a long-running server: keep its pauses short, and show them.

A full (generation 2) collection walks every tracked object. After start-up a server holds a
few hundred thousand of them (modules, classes, schemas, compiled SQL) that live as long as
the process; walking them took 90–250 ms per collection, every few seconds under load, and
every request in flight waited. ``freeze_startup_heap`` moves what start-up made into the
permanent generation, which collections skip, so a pause is proportional to what requests
make and drop. ``observe_pauses`` reports each pause as ``chat4all_gc_pause_seconds``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from chat4all.observability import metrics

_started: list[float] = []


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started.append(time.perf_counter())
    elif _started:
        metrics.GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - _started.pop())


def observe_pauses() -> None:
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


def freeze_startup_heap() -> None:
    """Call once, when the process is ready to serve: what exists now stays for its lifetime."""
    gc.collect()  # what start-up made and dropped is not worth keeping for ever
    gc.freeze()
