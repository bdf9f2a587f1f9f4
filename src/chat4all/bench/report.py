"""result.json and chart.png of a bench run."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chat4all.bench.load import Load, Sample, Spike

COLD_START_S = 10.0  # the first window of "windows": a fresh stack's first seconds
RECOVERED_MS = 200.0  # the bar's p99 accept: a spike is over when the per-second p99 is under it


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 2)}


def figures(samples: list[Sample]) -> dict[str, Any]:
    """Counts and latencies of a set of samples (one phase, one window)."""
    accepted = [s for s in samples if s.accepted is not None]
    delivered = sum(len(s.received) for s in accepted)
    return {
        "sent": len(samples),
        "accepted": len(accepted),
        "delivered": delivered,
        "accept_ms": percentiles([(s.accepted - s.intended) * 1000 for s in accepted]),  # type: ignore[operator]
        "e2e_ms": percentiles([(t - s.intended) * 1000 for s in accepted for t in s.received.values()]),
        "lost": sum(s.recipients for s in accepted) - delivered,
        "duplicates": sum(s.duplicates for s in samples),
    }


def windows(samples: list[Sample], started: float, duration: float, split_s: float = COLD_START_S) -> dict[str, Any]:
    """Accept latency of the measured load's first ``split_s`` seconds and of the rest, by
    intended send time: a cold start shows as a first window worse than the rest."""
    first = [s for s in samples if s.intended - started < split_s]
    rest = [s for s in samples if s.intended - started >= split_s]

    def window(part: list[Sample], lo: float, hi: float) -> dict[str, Any]:
        accepted = [s for s in part if s.accepted is not None]
        return {
            "from_s": lo,
            "to_s": hi,
            "sent": len(part),
            "accept_ms": percentiles([(s.accepted - s.intended) * 1000 for s in accepted]),  # type: ignore[operator]
        }

    return {"first": window(first, 0.0, min(split_s, duration)), "rest": window(rest, min(split_s, duration), duration)}


def per_second_p99(samples: list[Sample], started: float, seconds: int) -> list[float | None]:
    """p99 accept latency (ms) of the messages intended in each second of the measured load
    (None for a second with nothing accepted)."""
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    for s in samples:
        if s.accepted is None:
            continue
        b = int(s.intended - started)
        if 0 <= b < seconds:
            buckets[b].append((s.accepted - s.intended) * 1000)
    return [percentiles(b)["p99"] for b in buckets]


def recovered_after_s(per_second: list[float | None], end: float, threshold_ms: float = RECOVERED_MS) -> float | None:
    """Seconds from ``end`` (the spike's end, seconds into the load) until the per-second p99
    is under ``threshold_ms`` and stays under it to the end of the load; None if it never is.
    The second the spike ends in counts; seconds with nothing accepted are skipped."""
    first = max(0, int(end))
    measured = [i for i in range(first, len(per_second)) if per_second[i] is not None]
    if not measured:
        return None
    since = None
    for i in measured:
        if per_second[i] < threshold_ms:  # type: ignore[operator]
            since = i if since is None else since
        else:
            since = None
    return None if since is None else round(max(0.0, since - end), 1)


def spike_summary(samples: list[Sample], started: float, duration: float, spike: Spike) -> dict[str, Any]:
    """What the spike did: its window, what was sent and lost in it, the per-second p99 accept
    over the whole measured load, and how long after its end the p99 was back under 200 ms."""
    inside = [s for s in samples if spike.at <= s.intended - started < spike.end]
    part = figures(inside)
    per_second = per_second_p99(samples, started, math.ceil(duration))
    return {
        "rate": spike.rate,
        "from_s": spike.at,
        "to_s": spike.end,
        "sent": part["sent"],
        "sent_extra": sum(1 for s in inside if s.extra),
        "accepted": part["accepted"],
        "lost": part["lost"],
        "accept_ms": part["accept_ms"],
        "per_second_accept_p99_ms": per_second,
        "recovered_below_ms": RECOVERED_MS,
        "recovered_after_s": recovered_after_s(per_second, spike.end),
    }


def cpu_summary(before: Usage, after: Usage, delivered: int) -> dict[str, Any]:
    """CPU over the measured window (start of the measured load to the end of the drain): the
    Chat4All processes by role, the bench itself, and (production) the engines on the box."""

    def per_message(seconds: float | None) -> float | None:
        return None if seconds is None or not delivered else round(seconds * 1000 / delivered, 3)

    def delta(a: dict[str, float] | None, b: dict[str, float] | None) -> dict[str, float] | None:
        if a is None or b is None:
            return None
        return {k: round(b[k] - a[k], 2) for k in b if k in a}

    server = delta(before.server, after.server)
    engines = delta(before.engines, after.engines)
    server_s = None if server is None else sum(server.values())
    engines_s = None if engines is None else sum(engines.values())
    bench_s = after.bench - before.bench
    return {
        "window_s": round(after.at - before.at, 1),
        "delivered": delivered,
        "server_s": server,
        "server_total_s": None if server_s is None else round(server_s, 2),
        "server_cpu_ms_per_message": per_message(server_s),
        "bench_s": round(bench_s, 2),
        "bench_cpu_ms_per_message": per_message(bench_s),
        "engines_s": engines,
        "engines_total_s": None if engines_s is None else round(engines_s, 2),
        "engines_cpu_ms_per_message": per_message(engines_s),
    }


@dataclass(frozen=True)
class Usage:
    """CPU seconds so far, read at one moment: the bench's own, the Chat4All processes' by
    role, the engines' (production) by engine."""

    at: float
    bench: float
    server: dict[str, float] | None = None
    engines: dict[str, float] | None = None


def summarize(
    load: Load,
    *,
    server_cpu_s: float | None,
    server_peak_rss_mb: float | None,
    elapsed_s: float,
    cpu: tuple[Usage, Usage] | None = None,
) -> dict[str, Any]:
    measured = [s for s in load.samples if not s.warmup]
    main = figures(measured)
    accepted = [s for s in measured if s.accepted is not None]
    last = max((t for s in accepted for t in s.received.values()), default=load.started)
    window = max(last - load.started, 1e-9)
    statuses: dict[str, int] = {}
    for s in measured:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    result: dict[str, Any] = {
        "rate_target": load.rate,
        "duration_s": load.duration,
        "ramp_s": load.ramp,
        "warmup_s": load.warmup,
        "conversations": load.n_conversations,
        "recipients_per_conversation": load.n_recipients,
        "sent": main["sent"],
        "accepted": main["accepted"],
        "answers": statuses,
        "delivered": main["delivered"],
        "throughput_per_s": round(main["delivered"] / window, 1),
        "accept_ms": main["accept_ms"],
        "e2e_ms": main["e2e_ms"],
        "lost": main["lost"],
        "lost_sample": load.missing()[:20],
        "sockets_closed": [{"recipient": r.username, **r.closed} for r in load.recipients if r.closed],
        "duplicates": main["duplicates"],
        "order_violations": load.order_violations(),
        "server_cpu_s": None if server_cpu_s is None else round(server_cpu_s, 1),
        "server_peak_rss_mb": None if server_peak_rss_mb is None else round(server_peak_rss_mb, 1),
        "elapsed_s": round(elapsed_s, 1),
        "windows": windows(measured, load.started, load.duration),
    }
    if load.warmup > 0:
        warm = [s for s in load.samples if s.warmup]
        result["warmup"] = {
            "duration_s": load.warmup,
            **figures(warm),
            "lost_sample": load.missing(warmup=True)[:20],
            "order_violations": load.order_violations(warmup=True),
        }
    if load.spike is not None:
        result["spike"] = spike_summary(measured, load.started, load.duration, load.spike)
    if cpu is not None:
        result["cpu"] = cpu_summary(*cpu, delivered=main["delivered"])
        if server_cpu_s is None and result["cpu"]["server_total_s"] is not None:
            result["server_cpu_s"] = round(result["cpu"]["server_total_s"], 1)
    if load.flood is not None:
        result["flood"] = _flood(load)
    return result


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
    """Delivered per second and p99 latencies per second of intended send time; the warm-up
    (negative seconds) and the spike shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offset = math.ceil(load.warmup)  # bucket 0 is the first second of the warm-up
    seconds = offset + int(load.duration + 35)
    delivered = [0] * seconds
    accept: list[list[float]] = [[] for _ in range(seconds)]
    e2e: list[list[float]] = [[] for _ in range(seconds)]

    def bucket(t: float) -> int:
        return max(0, min(math.floor(t - load.started) + offset, seconds - 1))

    for s in load.samples:
        if s.accepted is None:
            continue
        b = bucket(s.intended)
        accept[b].append((s.accepted - s.intended) * 1000)
        for t in s.received.values():
            delivered[bucket(t)] += 1
            e2e[b].append((t - s.intended) * 1000)
    used = max((i for i, n in enumerate(delivered) if n), default=0) + 1
    xs = [i - offset for i in range(used)]

    def p99(values: list[float]) -> float:  # as in result.json
        value = percentiles(values)["p99"]
        return float("nan") if value is None else value

    fig, ax = plt.subplots(figsize=(10, 5))
    ax.plot(xs, delivered[:used], label="delivered / s", color="tab:blue")
    spike = load.spike
    target = [
        (load.rate + (spike.rate if spike is not None and spike.at <= x < spike.end else 0)) * load.n_recipients
        if x < load.duration else float("nan")
        for x in xs
    ]
    ax.step(xs, target, where="post", color="tab:blue", linestyle=":", label="target / s")
    if load.warmup > 0:
        ax.axvspan(-load.warmup, 0, color="tab:gray", alpha=0.15, label="warm-up")
    if spike is not None:
        ax.axvspan(spike.at, spike.end, color="tab:purple", alpha=0.15, label=f"spike +{spike.rate:g}/s")
    ax.set_xlabel("seconds since the start of the measured load")
    ax.set_ylabel("messages per second")
    ax2 = ax.twinx()
    ax2.plot(xs, [p99(v) for v in accept[:used]], color="tab:orange", label="accept p99 (ms)")
    ax2.plot(xs, [p99(v) for v in e2e[:used]], color="tab:red", label="end-to-end p99 (ms)")
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
