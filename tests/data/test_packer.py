"""The pack planner: budgets always hold, nothing is lost or duplicated, plans are reproducible and tight."""

from __future__ import annotations

import random

import pytest

from apps.bench.mixture import realistic_mixture
from qvltrain.data.packer import (
    Budget,
    NextFit,
    OnlineBestFit,
    PlanItem,
    WindowedBestFitDecreasing,
    best_fit_decreasing,
    plan_all,
)

BUDGET = Budget(seq_len=1000, max_patches=800)


def random_items(count: int, seed: int = 0) -> list[PlanItem]:
    rng = random.Random(seed)
    return [
        PlanItem(f"s{i}", rng.randint(1, 1000), rng.choice([0, rng.randint(0, 800)]), i) for i in range(count)
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda: WindowedBestFitDecreasing(BUDGET, 64),
        lambda: NextFit(BUDGET),
        lambda: OnlineBestFit(BUDGET, 8),
    ],
)
def test_every_item_once_and_budgets_hold(make) -> None:
    items = random_items(2000)
    packs = list(plan_all(make(), items))
    placed = [item.key for pack in packs for item in pack]
    assert sorted(placed) == sorted(item.key for item in items)
    for pack in packs:
        assert sum(i.num_tokens for i in pack) <= BUDGET.seq_len
        assert sum(i.num_patches for i in pack) <= BUDGET.max_patches


def test_plans_are_reproducible_and_streaming() -> None:
    items = random_items(1000, seed=1)
    first = [[i.key for i in p] for p in plan_all(WindowedBestFitDecreasing(BUDGET, 100), items)]
    second = [[i.key for i in p] for p in plan_all(WindowedBestFitDecreasing(BUDGET, 100), items)]
    assert first == second
    planner = WindowedBestFitDecreasing(BUDGET, 100)
    for item in items[:99]:
        planner.add(item)
    assert planner.pop() is None  # nothing planned before the window is full
    planner.add(items[99])
    assert planner.pop() is not None and len(planner.pending) < 100


def test_patch_budget_binds() -> None:
    items = [PlanItem(f"s{i}", 10, 500, i) for i in range(10)]
    packs = best_fit_decreasing(items, BUDGET)
    assert len(packs) == 10  # 500 + 500 patches > 800, although 20 tokens would fit


def test_item_that_fits_no_pack_is_refused() -> None:
    with pytest.raises(AssertionError, match="do not fit an empty pack"):
        WindowedBestFitDecreasing(BUDGET).add(PlanItem("huge", 1001, 0, 0))


def test_efficiency_on_the_realistic_mixture() -> None:
    sizes = realistic_mixture(4000, seed=1)
    budget = Budget(seq_len=8192, max_patches=32768)
    items = [PlanItem(str(i), s.num_tokens, s.num_patches, i) for i, s in enumerate(sizes)]
    total = sum(s.num_tokens for s in sizes)

    def efficiency(planner) -> float:
        return total / (len(list(plan_all(planner, items))) * budget.seq_len)

    ours = efficiency(WindowedBestFitDecreasing(budget, 256))
    assert ours > 0.99
    assert ours > efficiency(NextFit(budget)) + 0.1
