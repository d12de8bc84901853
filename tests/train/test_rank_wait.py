"""The rank-balance measurements: the wait clock, the cost-model fit and the packing lower bound."""

from __future__ import annotations

import time

import pytest
import torch

from apps.bench.cost_fit import fit_two, normalized_rms
from apps.bench.packing import patch_lower_bound
from qvltrain.train.metrics import WaitClock


def test_wait_clock_counts_blocked_time_as_waiting_and_cpu_time_as_work() -> None:
    clock = WaitClock(torch.device("cpu"))
    time.sleep(0.3)  # blocked, like a rank inside a collective
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:  # busy
        pass
    work, wait = clock.read()
    assert wait >= 0.25 and work > 0.0
    assert WaitClock(torch.device("meta")).read() is None  # not a CPU rank: no claim


def test_fit_recovers_known_rates_and_drops_a_negative_term() -> None:
    x1, x2 = [1.0, 2.0, 3.0, 4.0, 5.0], [4.0, 1.0, 0.0, 2.0, 7.0]
    y = [2 * a + 0.5 * b + 0.1 for a, b in zip(x1, x2, strict=True)]
    assert fit_two(x1, x2, y) == pytest.approx((2.0, 0.5, 0.1))
    falling = [3 * a - 0.2 * b + 1 for a, b in zip(x1, x2, strict=True)]
    a, b, _ = fit_two(x1, x2, falling)
    assert b == 0.0 and a > 0
    assert normalized_rms([1.0, 3.0], [1.0, 3.0]) == 0.0
    assert normalized_rms([2.0, 2.0], [1.0, 3.0]) == pytest.approx(0.5)


def test_patch_lower_bound_sees_what_the_sum_does_not() -> None:
    assert patch_lower_bound([60, 60, 60], 100) == 3  # the sum alone says 2
    assert patch_lower_bound([51, 51, 51, 51, 10, 10, 10], 100) == 4  # over half: a pack each (sum: 3)
    assert patch_lower_bound([30, 30, 30, 10], 100) == 1
    assert patch_lower_bound([], 100) == 0
