"""Percentiles and the figures a Measurement derives from its samples."""

from __future__ import annotations

import pytest

from claudebench.bench.stats import Measurement, percentile


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None


def test_percentile_rejects_out_of_range():
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_measurement_sorts_samples_and_derives_rate():
    m = Measurement(clients=4, ok=4, errors=0, seconds=2.0, latencies_s=[0.004, 0.001, 0.003, 0.002])
    assert m.latencies_s == [0.001, 0.002, 0.003, 0.004]
    assert m.rate == 2.0
    assert m.p50_s == 0.002
    assert m.p99_s == 0.004
