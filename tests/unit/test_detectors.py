"""Drift detectors behave as their statistics say: run lengths, delays, change-point and shift estimates."""

from __future__ import annotations

import numpy as np
import pytest

from models.detectors import (
    CUSUM,
    EWMA,
    Shewhart,
    cusum_limit,
    ewma_arl,
    ewma_limit,
    make_detector,
    robust_location_scale,
    shewhart_limit,
    siegmund_arl,
)
from models.pca import PCAMonitor

ARL0 = 200.0


def _run_lengths(make, runs: int, seed: int, shift: float = 0.0, cap: int = 5000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lengths = np.empty(runs)
    for i in range(runs):
        detector = make()
        data = rng.normal(shift, 1.0, cap)
        for x in data:
            detector.update(x)
            if detector.drift_detected:
                break
        lengths[i] = detector.n
    return lengths


@pytest.mark.parametrize(
    ("make", "tolerance"),
    [
        (lambda: CUSUM(arl0=ARL0), 0.15),
        (lambda: EWMA(arl0=ARL0, lam=0.1), 0.15),
        (lambda: Shewhart(arl0=ARL0), 0.15),
    ],
    ids=["cusum", "ewma", "shewhart"],
)
def test_in_control_run_length_is_near_design_arl0(make, tolerance: float) -> None:
    lengths = _run_lengths(make, runs=800, seed=11)
    assert abs(lengths.mean() / ARL0 - 1) < tolerance


def test_pca_in_control_run_length_is_near_design_arl0() -> None:
    rng = np.random.default_rng(5)
    mixing = rng.normal(size=(4, 4))
    monitor = PCAMonitor(list("abcd"), arl0=ARL0).fit(rng.normal(size=(20000, 4)) @ mixing)
    data = rng.normal(size=(200_000, 4)) @ mixing
    alarms = 0
    for row in data:
        monitor.update(row)
        if monitor.drift_detected:
            alarms += 1
            monitor.reset()
    arl = len(data) / max(alarms, 1)
    assert 0.7 * ARL0 < arl < 1.4 * ARL0


CELLS = 100  # per channel


def _false_alarm_run_length(h: float, reference_cells: int, channels: int = 20_000) -> float:
    """Cells per false alarm over many channels, each judged against the mean of its own first cells."""
    rng = np.random.default_rng(3)
    reference = rng.normal(0.0, 1.0, (channels, reference_cells)).mean(axis=1)
    upper, lower, alarms, k = np.zeros(channels), np.zeros(channels), 0, 1.0
    for _ in range(CELLS):
        z = rng.normal(0.0, 1.0, channels) - reference
        upper, lower = np.maximum(0, upper + z - k), np.maximum(0, lower - z - k)
        alarmed = (upper > h) | (lower > h)
        alarms += int(alarmed.sum())
        upper[alarmed] = lower[alarmed] = 0.0
    return channels * CELLS / alarms


@pytest.mark.parametrize("arl0", [200.0, 1000.0])
def test_a_cusum_on_an_estimated_reference_holds_its_arl0_where_the_known_mean_limit_does_not(
    arl0: float,
) -> None:
    allowing = _false_alarm_run_length(cusum_limit(arl0, 1.0, reference_cells=8), 8)
    ignoring = _false_alarm_run_length(cusum_limit(arl0, 1.0), 8)
    assert 0.85 * arl0 < allowing < 1.2 * arl0
    assert ignoring < 0.4 * arl0


def test_cusum_limit_matches_the_textbook_pair_k_half_h_five() -> None:
    # Montgomery: k = 0.5, h = 5 gives a one-sided ARL₀ of about 930 (Siegmund: 938).
    assert siegmund_arl(0.5, 5.0) == pytest.approx(938, rel=0.01)
    assert cusum_limit(469.0) == pytest.approx(5.0, abs=0.01)


def test_ewma_markov_chain_reproduces_published_arl() -> None:
    # Lucas & Saccucci (1990): λ = 0.1, L = 2.814 gives ARL₀ ≈ 500 and ARL ≈ 10.3 at a 1σ shift.
    assert ewma_arl(0.1, 2.814) == pytest.approx(500, rel=0.03)
    assert ewma_arl(0.1, 2.814, shift=1.0) == pytest.approx(10.3, rel=0.05)
    assert ewma_limit(500.0, 0.1) == pytest.approx(2.814, abs=0.01)


def test_shewhart_three_sigma_is_arl_370() -> None:
    assert shewhart_limit(370.4) == pytest.approx(3.0, abs=0.001)


def test_cusum_delay_for_one_sigma_shift_is_within_one_and_a_half_times_the_lorden_bound() -> None:
    arl0 = 10_000.0
    delays = _run_lengths(lambda: CUSUM(arl0=arl0), runs=300, seed=3, shift=1.0)
    bound = np.log(arl0) / 0.5
    assert delays.mean() < 1.5 * bound


@pytest.mark.parametrize("kind", [CUSUM, EWMA])
def test_onset_and_magnitude_estimates_are_near_the_true_change(kind) -> None:
    rng = np.random.default_rng(7)
    errors, shifts = [], []
    for _ in range(100):
        detector = kind(arl0=5000, mu=25.0, sigma=0.3)
        data = np.r_[rng.normal(25.0, 0.3, 400), rng.normal(24.55, 0.3, 400)]
        for x in data:
            detector.update(x)
            if detector.drift_detected:
                break
        assert detector.drift_detected
        errors.append(detector.onset - 400)
        shifts.append(detector.magnitude)
    assert abs(np.median(errors)) <= 5
    assert np.median(shifts) == pytest.approx(-0.45, abs=0.12)


def test_detectors_learn_mean_and_sigma_from_training_and_ignore_outliers() -> None:
    rng = np.random.default_rng(9)
    training = np.r_[rng.normal(18.0, 0.2, 5000), [500.0, -300.0]]
    mu, sigma = robust_location_scale(training)
    assert mu == pytest.approx(18.0, abs=0.01)
    assert sigma == pytest.approx(0.2, rel=0.05)
    detector = CUSUM(arl0=1000).fit(training)
    assert (detector.mu, detector.sigma) == (mu, sigma)


def test_state_round_trip_resumes_the_statistic() -> None:
    first, second = CUSUM(arl0=1000), CUSUM(arl0=1000)
    for x in (0.8, 1.2, 0.9):
        first.update(x)
    second.load(first.state())
    first.update(1.1)
    second.update(1.1)
    assert second.statistic == first.statistic
    assert second.n == first.n


def test_pca_contributions_name_the_signal_that_broke_the_correlation() -> None:
    rng = np.random.default_rng(4)
    latent = rng.normal(size=(5000, 1))
    train = np.hstack([latent, 2 * latent, rng.normal(size=(5000, 1))]) + 0.05 * rng.normal(size=(5000, 3))
    monitor = PCAMonitor(["flow", "loading", "tension"], arl0=1000).fit(train)
    monitor.update([0.0, 1.0, 0.0])
    assert monitor.drift_detected
    contributions = monitor.contributions()
    assert max(contributions, key=contributions.get) in ("flow", "loading")
    assert contributions["tension"] < 0.1
    restored = PCAMonitor.from_state(monitor.state())
    restored.update([0.0, 1.0, 0.0])
    assert restored.statistic == pytest.approx(monitor.statistic)


@pytest.mark.parametrize("kind", ["cusum", "ewma", "shewhart"])
def test_a_detector_starts_afresh_on_the_first_update_after_an_alarm(kind: str) -> None:
    detector = make_detector(kind, 1000.0, 0.0, 1.0)
    for _ in range(3):
        detector.update(0.0)
    while not detector.drift_detected:
        detector.update(5.0)
    assert detector.n > 3
    detector.update(0.0)
    assert not detector.drift_detected and detector.n == 1, "no caller had to reset it"
    assert detector.statistic < detector.threshold
