"""The collector's pauses are shown to operators."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from chat4all.observability import heap


def _full_collections_observed() -> float:
    return REGISTRY.get_sample_value("chat4all_gc_pause_seconds_count", {"generation": "2"}) or 0.0


def test_a_full_collection_is_observed_as_a_pause() -> None:
    heap.observe_pauses()
    heap.observe_pauses()  # once is enough; a second call adds no second observer
    assert gc.callbacks.count(heap._on_gc) == 1
    before = _full_collections_observed()
    gc.collect()
    assert _full_collections_observed() == before + 1
