"""``twin bench soak``'s judgement: growth from the first reading after the warm-up, stable p99s, and
p99s from histogram bucket deltas."""

from __future__ import annotations

import math

import pytest

from bench.soak import Reading, Snapshot, growth, histogram_quantile, judge, stable


def test_growth_counts_from_the_first_reading_at_or_after_the_warm_up_to_the_last() -> None:
    # the warm-up doubles the figure; afterwards it goes 200 -> 206: 3 %
    g = growth([0, 60, 120, 180, 240], [100, 180, 200, 210, 206], warmup_s=120)
    assert (g.after_warmup, g.end) == (200, 206)
    assert g.percent == pytest.approx(3.0)
    assert g.passed


def test_growth_of_five_percent_or_more_misses_the_goal() -> None:
    assert not growth([0, 60, 120], [100, 100, 105], warmup_s=60).passed
    assert growth([0, 60, 120], [100, 100, 104.9], warmup_s=60).passed


def test_a_figure_that_shrinks_passes() -> None:
    g = growth([0, 60, 120], [300, 200, 150], warmup_s=30)
    assert g.percent == pytest.approx(-25.0)
    assert g.passed


def test_growth_from_zero_is_none_while_it_stays_zero_and_unbounded_once_it_is_not() -> None:
    assert growth([0, 60], [0, 0], warmup_s=0).percent == 0.0
    assert math.isinf(growth([0, 60], [0, 1], warmup_s=0).percent)


def test_a_run_without_a_reading_after_the_warm_up_is_an_error() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        growth([0, 60], [1, 2], warmup_s=61)


def test_p99s_are_stable_unless_the_later_half_rises_beyond_ratio_and_slack() -> None:
    assert stable([0.10, 0.12, 0.11, 0.13, 0.12, 0.11])
    assert stable([0.100, 0.100, 0.190, 0.190], ratio=1.5, slack_s=0.05)  # 0.19 <= 1.5 * 0.1 + 0.05
    assert not stable([0.100, 0.100, 0.210, 0.210], ratio=1.5, slack_s=0.05)
    assert stable([0.5])
    assert stable([math.nan, 0.1, 0.1])


def test_the_quantile_comes_from_what_the_buckets_counted_between_two_readings() -> None:
    before = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    # since then: 100 observations, 90 up to 0.1 s, 10 between 0.5 and 1 s
    after = {0.1: 140.0, 0.5: 180.0, 1.0: 200.0, math.inf: 200.0}
    # rank 99 of 100 lies in (0.5, 1.0], 9 of its 10 observations in: interpolated at 0.95 s
    assert histogram_quantile(0.99, before, after) == pytest.approx(0.95)
    assert histogram_quantile(0.5, before, after) == pytest.approx(0.1 * 50 / 90)


def test_a_quantile_beyond_the_last_finite_bucket_is_that_bound_and_none_without_observations() -> None:
    assert histogram_quantile(0.99, {}, {1.0: 10.0, math.inf: 100.0}) == 1.0
    assert math.isnan(histogram_quantile(0.99, {1.0: 5.0, math.inf: 5.0}, {1.0: 5.0, math.inf: 5.0}))


def _snapshot(t_s: float, rss: int, samples: float, fds: int = 10) -> Snapshot:
    return Snapshot(t_s, {"twin": Reading(rss, fds, 4)}, samples, samples, {math.inf: 0.0}, [0.01])


def test_the_verdict_names_every_goal_missed_after_the_warm_up() -> None:
    # rss grows 100 -> 110 after the warm-up; 6,000 samples/s over the minute after it
    snapshots = [_snapshot(0, 50, 0), _snapshot(60, 100, 60_000), _snapshot(120, 110, 420_000)]
    verdict = judge(snapshots, warmup_s=60)
    assert verdict.twin_rate == pytest.approx(6000.0)
    assert [i.start_s for i in verdict.after] == [60]
    assert verdict.failures() == ["twin rss grew +10.0 %"]


def test_a_stack_below_five_thousand_samples_a_second_misses_the_rate_goal() -> None:
    snapshots = [_snapshot(0, 100, 0), _snapshot(60, 100, 240_000)]
    assert judge(snapshots, warmup_s=0).failures() == ["the stack carried 4,000 samples/s, below 5,000"]


def test_growth_compares_peaks_so_a_sawtooth_is_not_growth_and_rising_peaks_are() -> None:
    times = list(range(0, 600, 60))
    # a cache that fills and is flushed: a crest in every two readings, ten after the warm-up (window 2)
    sawtooth = [50, 150, 60, 150, 70, 150, 60, 150, 55, 150]
    g = growth(times, sawtooth, warmup_s=0)
    assert (g.after_warmup, g.end) == (150, 150)
    assert g.passed
    rising = [50, 150, 60, 155, 70, 160, 60, 165, 55, 170]
    assert growth(times, rising, warmup_s=0).percent == pytest.approx((170 - 150) / 150 * 100)
