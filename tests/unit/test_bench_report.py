"""The bench's figures from synthetic samples: warm-up apart, cold-start windows, the spike and
its recovery, CPU per message."""

from __future__ import annotations

import pytest

from chat4all.bench.load import Load, Recipient, Sample, Spike, plan
from chat4all.bench.report import (
    Usage,
    cpu_summary,
    per_second_p99,
    recovered_after_s,
    spike_summary,
    summarize,
    windows,
)

T0 = 1000.0  # perf_counter() at the start of the measured load


def sample(at: float, accept_ms: float | None, *, c: int = 0, i: int = 0, received: int = 1, recipients: int = 1,
           warmup: bool = False, extra: bool = False) -> Sample:
    s = Sample(c, i, T0 + at, warmup=warmup, extra=extra)
    if accept_ms is not None:
        s.status, s.accepted, s.recipients, s.message_id = 202, s.intended + accept_ms / 1000, recipients, f"m{c}-{i}"
        s.received = {f"r{j}": s.accepted + 0.01 for j in range(received)}
    return s


def test_plan_puts_the_warm_up_before_zero_and_the_spike_on_top_of_the_base_rate() -> None:
    planned = plan(10, 5, warmup=2, spike=Spike(rate=20, at=1, duration=2))
    warm = [p for p in planned if p.warmup]
    extra = [p for p in planned if p.extra]
    assert len(warm) == 20 and all(-2 <= p.at < 0 for p in warm)
    assert len(extra) == 40 and all(1 <= p.at < 3 for p in extra)
    assert len(planned) - len(warm) - len(extra) == 50
    assert [p.at for p in planned] == sorted(p.at for p in planned)


def test_with_a_warm_up_the_ramp_is_the_warm_ups_and_the_measured_load_starts_at_the_rate() -> None:
    planned = plan(10, 5, ramp=2, warmup=2)
    assert sum(p.warmup for p in planned) == 10  # half the rate on average over the ramp
    assert [p.at for p in planned if not p.warmup][:3] == pytest.approx([0, 0.1, 0.2])
    assert sum(not p.warmup for p in planned) == 50
    assert len(plan(10, 5, ramp=2)) == 40  # without a warm-up, the measured load ramps


def load_of(samples: list[Sample], *, warmup: float = 0.0, spike: Spike | None = None, duration: float = 20) -> Load:
    load = Load(["http://bench.invalid"], rate=10, duration=duration, conversations=1, recipients=1, ramp=0,
                warmup=warmup, spike=spike)
    load.started = T0
    load.samples = samples
    load.by_conversation = [samples]
    load.members = [["r0"]]
    load.recipients = [Recipient("r0", "http://bench.invalid")]
    return load


def test_the_warm_up_is_reported_apart_and_left_out_of_the_main_figures() -> None:
    warm = [sample(-2 + k / 10, 900, i=k, warmup=True) for k in range(20)]
    warm[3].received = {}  # lost in the warm-up
    warm[4].duplicates = 1
    main = [sample(k / 10, 20, i=20 + k) for k in range(100)]
    load = load_of(warm + main, warmup=2)
    seen = [(k + 1, k) for k in range(120) if k != 3]
    seen[5], seen[6] = seen[6], seen[5]  # warm-up messages 6 and 7 came the wrong way round
    load.recipients[0].seen[0] = seen

    result = summarize(load, server_cpu_s=None, server_peak_rss_mb=None, elapsed_s=10)

    assert (result["sent"], result["accepted"], result["delivered"]) == (100, 100, 100)
    assert result["accept_ms"]["max"] == pytest.approx(20)  # none of the warm-up's 900 ms
    assert (result["lost"], result["duplicates"], result["order_violations"]) == (0, 0, 0)
    assert result["lost_sample"] == []
    w = result["warmup"]
    assert (w["duration_s"], w["sent"], w["accepted"], w["delivered"]) == (2, 20, 20, 19)
    assert w["accept_ms"]["p50"] == pytest.approx(900)
    assert (w["lost"], w["duplicates"], w["order_violations"]) == (1, 1, 1)
    assert [m["index"] for m in w["lost_sample"]] == [3]


def test_without_a_warm_up_there_is_no_warm_up_section() -> None:
    result = summarize(load_of([sample(0, 10)]), server_cpu_s=None, server_peak_rss_mb=None, elapsed_s=1)
    assert "warmup" not in result and "spike" not in result and "cpu" not in result


def test_windows_split_the_first_ten_seconds_from_the_rest() -> None:
    cold = [sample(k / 10, 500 if k < 20 else 30, i=k) for k in range(100)]  # slow first 2 s
    warm = [sample(10 + k / 10, 40, i=100 + k) for k in range(100)]
    w = windows(cold + warm, T0, 20)
    assert (w["first"]["from_s"], w["first"]["to_s"], w["first"]["sent"]) == (0, 10, 100)
    assert (w["rest"]["from_s"], w["rest"]["to_s"], w["rest"]["sent"]) == (10, 20, 100)
    assert w["first"]["accept_ms"]["p99"] == pytest.approx(500)
    assert w["rest"]["accept_ms"]["p99"] == pytest.approx(40)


def test_a_load_shorter_than_the_first_window_has_an_empty_rest() -> None:
    w = windows([sample(1, 10)], T0, 5)
    assert w["first"]["to_s"] == 5 and w["rest"] == {"from_s": 5, "to_s": 5, "sent": 0, "accept_ms": {
        "p50": None, "p90": None, "p99": None, "max": None}}


def test_per_second_p99_buckets_by_intended_time_and_leaves_empty_seconds_none() -> None:
    samples = [sample(0.5, 10), sample(0.9, 30), sample(2.1, 300), sample(2.2, None)]
    assert per_second_p99(samples, T0, 4) == [30, None, 300, None]


@pytest.mark.parametrize(
    ("per_second", "end", "recovered"),
    [
        ([50, 900, 900, 150, 120, 100], 3.0, 0.0),  # under the bar from the spike's end on
        ([50, 900, 900, 900, 900, 150, 120], 3.0, 2.0),  # two seconds late
        ([50, 900, 900, 900, 150, 900, 100, 100], 3.0, 3.0),  # a dip back under does not count: the last rise does
        ([50, 900, 900, 900, 900, 900], 3.0, None),  # never back under
        ([50, 900, 900], 3.0, None),  # the spike ended with the load: nothing to recover in
        ([50, 900, 900, 900, None, 120, None, 90], 3.0, 2.0),  # seconds with nothing accepted are skipped
        ([50, 900, 900, 900, 150, 120], 2.5, 1.5),  # from the spike's end, not from a whole second
    ],
)
def test_recovered_after_is_the_time_from_the_spikes_end_until_p99_stays_under_the_bar(
    per_second: list[float | None], end: float, recovered: float | None
) -> None:
    assert recovered_after_s(per_second, end) == recovered


def test_the_spike_reports_its_window_what_was_sent_and_lost_in_it_and_its_recovery() -> None:
    spike = Spike(rate=30, at=2, duration=2)
    base = [sample(k / 10, 500 if 20 <= k < 50 else 20, i=k) for k in range(80)]  # slow from 2 s to 5 s
    extra = [sample(2 + k / 30, 600, i=100 + k, extra=True) for k in range(60)]
    extra[0].received = {}
    result = spike_summary(base + extra, T0, 8, spike)
    assert (result["from_s"], result["to_s"], result["rate"]) == (2, 4, 30)
    assert (result["sent"], result["sent_extra"], result["accepted"], result["lost"]) == (80, 60, 80, 1)
    assert result["per_second_accept_p99_ms"] == [20, 20, 600, 600, 500, 20, 20, 20]
    assert result["recovered_after_s"] == 1.0


def test_summarize_reports_the_spike_of_the_measured_load_only() -> None:
    spike = Spike(rate=10, at=0, duration=1)
    samples = [sample(-0.5, 900, i=0, warmup=True), sample(0.2, 10, i=1), sample(0.3, 10, i=2, extra=True)]
    result = summarize(load_of(samples, warmup=1, spike=spike, duration=3), server_cpu_s=None, server_peak_rss_mb=None,
                       elapsed_s=3)
    assert (result["spike"]["sent"], result["spike"]["sent_extra"]) == (2, 1)


def test_cpu_is_the_difference_over_the_window_per_role_and_per_delivered_message() -> None:
    before = Usage(at=10.0, bench=1.0, server={"api-0": 5.0, "api-1": 4.0, "router-0": 2.0},
                   engines={"postgres": 100.0, "kafka": 50.0})
    after = Usage(at=30.0, bench=3.0, server={"api-0": 9.0, "api-1": 8.0, "router-0": 4.0},
                  engines={"postgres": 103.0, "kafka": 51.0})
    cpu = cpu_summary(before, after, delivered=2000)
    assert cpu["window_s"] == 20
    assert cpu["server_s"] == {"api-0": 4.0, "api-1": 4.0, "router-0": 2.0}
    assert cpu["server_total_s"] == 10.0 and cpu["server_cpu_ms_per_message"] == 5.0
    assert cpu["bench_s"] == 2.0 and cpu["bench_cpu_ms_per_message"] == 1.0
    assert cpu["engines_s"] == {"postgres": 3.0, "kafka": 1.0} and cpu["engines_cpu_ms_per_message"] == 2.0


def test_cpu_without_engines_or_deliveries_says_so_rather_than_dividing_by_zero() -> None:
    before, after = Usage(at=0.0, bench=1.0, server={"all": 1.0}), Usage(at=1.0, bench=1.5, server={"all": 2.0})
    cpu = cpu_summary(before, after, delivered=0)
    assert cpu["server_s"] == {"all": 1.0} and cpu["server_cpu_ms_per_message"] is None
    assert cpu["engines_s"] is None and cpu["engines_cpu_ms_per_message"] is None
