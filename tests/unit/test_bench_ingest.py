"""``twin bench ingest``'s CPU accounting: the ratio ceiling follows from what each process spent."""

from __future__ import annotations

import pytest

from bench.ingest import Cpu, Result, Rounds, cpu_table


def _result(database_us: float, receive_us: float = 10.0, raw: float = 100_000.0) -> Result:
    services = {"broker": 1e-6, "database": database_us * 1e-6}
    return Result("MQTT", raw, 50_000.0, 1.0, 2.0, 1000, Cpu(receive_us * 1e-6, {}), Cpu(30e-6, services))


def test_the_ceiling_is_the_receive_rate_while_the_services_fit_beside_it(monkeypatch) -> None:
    monkeypatch.setattr("bench.ingest.os.cpu_count", lambda: 2)
    # receive 10 µs on one core; the broker and the database fit in the other: the raw rate is reachable
    assert _result(database_us=6.0).ceiling == pytest.approx(1.0)


def test_the_ceiling_falls_below_one_when_the_database_needs_more_than_the_spare_cores(monkeypatch) -> None:
    monkeypatch.setattr("bench.ingest.os.cpu_count", lambda: 2)
    # (10 + 1 + 14) µs of CPU per sample on 2 cores: 12.5 µs of wall time per sample at best
    assert _result(database_us=14.0).ceiling == pytest.approx(10.0 / 12.5)
    monkeypatch.setattr("bench.ingest.os.cpu_count", lambda: 4)
    assert _result(database_us=14.0).ceiling == pytest.approx(1.0)


def test_the_cpu_table_prints_microseconds_per_sample_and_the_ceiling(monkeypatch) -> None:
    monkeypatch.setattr("bench.ingest.os.cpu_count", lambda: 2)
    table = cpu_table([_result(database_us=14.0)])
    cells = [str(c) for column in table.columns for c in column.cells]
    # own work 20 µs; at 0.8 of 100,000/s a sample has 12.5 µs: 2.5 beside receiving, 25 − 25 on two cores
    assert cells == ["MQTT", "10.0", "–", "30.0", "1.0", "14.0", "–", "0.80", "20.0", "2.5 / 0.0"]


def test_own_work_is_counted_beyond_receiving_the_way_ingest_receives(monkeypatch) -> None:
    monkeypatch.setattr("bench.ingest.os.cpu_count", lambda: 2)
    result = _result(database_us=6.0)
    result.raw_loop, result.raw_loop_cpu = 160_000.0, Cpu(6e-6, {})
    # ingest 30 µs, of which 6 µs receive on the loop: 24 µs of own work; the ratio stays to the raw client
    assert result.own_work == pytest.approx(24e-6)
    assert result.ratio == pytest.approx(0.5)
    assert result.loop_ratio == pytest.approx(50_000 / 160_000)
    # receiving costs 6 µs, (6 + 7) / 2 cores = 6.5 µs of wall per sample: 153,846/s against 100,000
    assert result.ceiling == pytest.approx((1 / 6.5e-6) / 100_000)
    table = cpu_table([result])
    cells = [str(c) for column in table.columns for c in column.cells]
    assert cells[1:3] == ["10.0", "6.0"]


def test_rounds_give_median_rates_and_the_median_of_paired_ratios() -> None:
    cpu = Cpu(1e-6, {})
    raw = Rounds([(100.0, cpu), (200.0, cpu), (50.0, cpu)])
    ingest = Rounds([(90.0, cpu), (100.0, cpu), (40.0, cpu)])
    assert raw.rate == 100.0 and ingest.rate == 90.0
    # paired ratios 0.9, 0.5, 0.8: their median, not 90 / 100 of the median rates
    assert ingest.ratio_to(raw) == pytest.approx(0.8)
