"""The Bernoulli CUSUM behind the K-value screening: design ARL₀ held in control, share shifts found."""

from __future__ import annotations

import numpy as np
import pytest

from models.detectors import BernoulliCUSUM, bernoulli_cusum_arl, bernoulli_cusum_design


def _run_length(detector: BernoulliCUSUM, share: float, rng: np.random.Generator) -> int:
    detector.reset()
    while not detector.drift_detected:
        detector.update(bool(rng.random() < share))
    return detector.n


def test_design_limit_is_the_smallest_that_reaches_arl0() -> None:
    m, h = bernoulli_cusum_design(1e4, 0.01, 0.05)
    assert m == 40  # γ = 0.02499 for p0 = 1 %, p1 = 5 %
    assert bernoulli_cusum_arl(0.01, m, h) >= 1e4 > bernoulli_cusum_arl(0.01, m, h - 1)


def test_markov_chain_arl_matches_a_hand_solved_chain() -> None:
    # m = 2, h = 2: from 0 a flag goes to 1, from 1 a flag alarms and anything else returns to 0;
    # L0 = 1 + p·L1 + (1−p)·L0 and L1 = 1 + (1−p)·L0 give L0 = (1 + p)/p².
    assert bernoulli_cusum_arl(0.1, 2, 2) == pytest.approx(1.1 / 0.01)


def test_in_control_run_length_is_near_design_arl0() -> None:
    rng = np.random.default_rng(7)
    detector = BernoulliCUSUM(arl0=200, p0=0.05, p1=0.15)
    m, h = detector.design
    exact = bernoulli_cusum_arl(0.05, m, h)
    assert 200 <= exact < 260
    lengths = [_run_length(detector, 0.05, rng) for _ in range(1500)]
    assert np.mean(lengths) == pytest.approx(exact, rel=0.1)


def test_a_share_shift_is_found_fast_with_onset_and_share() -> None:
    rng = np.random.default_rng(8)
    detector = BernoulliCUSUM(arl0=1e4, p0=0.01, p1=0.05)
    delays, magnitudes = [], []
    for _ in range(200):
        detector.reset()
        for _ in range(300):
            detector.update(bool(rng.random() < 0.01))
        if detector.drift_detected:
            continue
        while not detector.drift_detected:
            detector.update(bool(rng.random() < 0.1))
        delays.append(detector.n - 300)
        magnitudes.append(detector.magnitude)
    assert len(delays) >= 190
    assert np.mean(delays) < 2 * bernoulli_cusum_arl(0.1, *detector.design)
    assert np.median(magnitudes) > 0.05


def test_state_round_trip_resumes_the_statistic() -> None:
    rng = np.random.default_rng(9)
    straight, resumed = BernoulliCUSUM(arl0=500, p0=0.02, p1=0.1), BernoulliCUSUM()
    flags = rng.random(400) < 0.05
    for flag in flags[:200]:
        straight.update(bool(flag))
    resumed.load(straight.state())
    for flag in flags[200:]:
        straight.update(bool(flag))
        resumed.update(bool(flag))
        assert (resumed.statistic, resumed.drift_detected) == (straight.statistic, straight.drift_detected)
