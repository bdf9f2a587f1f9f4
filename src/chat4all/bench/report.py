"""result.json and chart.png of a bench run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chat4all.bench.load import Load


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 2)}


def summarize(load: Load, *, server_cpu_s: float | None, server_peak_rss_mb: float | None, elapsed_s: float) -> dict[str, Any]:
    accepted = [s for s in load.samples if s.accepted is not None]
    accept_ms = [(s.accepted - s.intended) * 1000 for s in accepted]  # type: ignore[operator]
    e2e_ms = [(t - s.intended) * 1000 for s in accepted for t in s.received.values()]
    delivered = sum(len(s.received) for s in accepted)
    expected = sum(s.recipients for s in accepted)
    last = max((t for s in accepted for t in s.received.values()), default=load.started)
    window = max(last - load.started, 1e-9)
    statuses: dict[str, int] = {}
    for s in load.samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    return {
        "rate_target": load.rate,
        "duration_s": load.duration,
        "ramp_s": load.ramp,
        "conversations": load.n_conversations,
        "recipients_per_conversation": load.n_recipients,
        "sent": len(load.samples),
        "accepted": len(accepted),
        "answers": statuses,
        "delivered": delivered,
        "throughput_per_s": round(delivered / window, 1),
        "accept_ms": percentiles(accept_ms),
        "e2e_ms": percentiles(e2e_ms),
        "lost": expected - delivered,
        "lost_sample": load.missing()[:20],
        "sockets_closed": [{"recipient": r.username, **r.closed} for r in load.recipients if r.closed],
        "duplicates": sum(r.duplicates for r in load.recipients),
        "order_violations": load.order_violations(),
        "server_cpu_s": None if server_cpu_s is None else round(server_cpu_s, 1),
        "server_peak_rss_mb": None if server_peak_rss_mb is None else round(server_peak_rss_mb, 1),
        "elapsed_s": round(elapsed_s, 1),
        **({"flood": _flood(load)} if load.flood is not None else {}),
    }


def _flood(load: Load) -> dict[str, Any]:
    flood = load.flood
    assert flood is not None
    return {
        "groups": flood.groups,
        "members_per_group": flood.members,
        "rate_target": flood.rate,
        "sent": flood.sent,
        "answers": {str(k): v for k, v in sorted(flood.answers.items())},
        "accept_ms": percentiles(flood.accept_ms),
    }


def write(out: Path, load: Load, result: dict[str, Any], *, title: str = "Chat4All bench") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(out / "chart.png", load, result, title=title)


def chart(path: Path, load: Load, result: dict[str, Any], *, title: str = "Chat4All bench") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = int(load.duration + 35)
    delivered = [0] * seconds
    accept: list[list[float]] = [[] for _ in range(seconds)]
    e2e: list[list[float]] = [[] for _ in range(seconds)]
    for s in load.samples:
        if s.accepted is None:
            continue
        b = min(int(s.intended - load.started), seconds - 1)
        accept[b].append((s.accepted - s.intended) * 1000)
        for t in s.received.values():
            delivered[min(int(t - load.started), seconds - 1)] += 1
            e2e[b].append((t - s.intended) * 1000)
    used = max((i for i, n in enumerate(delivered) if n), default=0) + 1

    def p99(values: list[float]) -> float:
        return sorted(values)[int(0.99 * (len(values) - 1))] if values else float("nan")

    fig, ax = plt.subplots(figsize=(10, 5))
    ax.plot(range(used), delivered[:used], label="delivered / s", color="tab:blue")
    ax.axhline(load.rate * load.n_recipients, color="tab:blue", linestyle=":", label="target / s")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("messages per second")
    ax2 = ax.twinx()
    ax2.plot(range(used), [p99(v) for v in accept[:used]], color="tab:orange", label="accept p99 (ms)")
    ax2.plot(range(used), [p99(v) for v in e2e[:used]], color="tab:red", label="end-to-end p99 (ms)")
    ax2.set_ylabel("latency (ms)")
    ax2.set_yscale("log")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax.legend(lines, labels, loc="upper left")
    ax.set_title(
        f"{title}: target {load.rate:g}/s, delivered {result['throughput_per_s']}/s, "
        f"accept p99 {result['accept_ms']['p99']} ms"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
