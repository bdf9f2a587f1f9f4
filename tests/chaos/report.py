"""Prints bench-out/chaos/results.json as the table of docs/reliability.md:
``python -m tests.chaos.report [results.json]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.chaos.test_failover import RESULTS

COLUMNS = (
    ("fault", "fault"),
    ("killed", "killed"),
    ("sends accepted", "sends_accepted"),
    ("outage s (target)", None),
    ("failed attempts", "failures_seen"),
    ("p99 accept back < 200 ms after s", "p99_back_under_200ms_after_s"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("reordered", "reordered_conversations"),
    ("not received", "not_received"),
    ("received again (at-least-once)", "received_again"),
    ("webhook missing / out of order", None),
)


def cell(result: dict, key: str | None, title: str) -> str:
    if title.startswith("outage"):
        return f"{result['outage_s']} (< {result['target_s']})"
    if title.startswith("webhook"):
        return f"{result['webhook_missing']} / {result['webhook_out_of_order']}"
    value = result.get(key or "", "")
    if isinstance(value, dict):
        return ", ".join(f"{k}×{v}" for k, v in value.items()) or "none"
    return str(value)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    results = json.loads(path.read_text())
    print("| " + " | ".join(t for t, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for result in results.values():
        print("| " + " | ".join(cell(result, k, t) for t, k in COLUMNS) + " |")


if __name__ == "__main__":
    main()
