"""The pack planner: budgets always hold, nothing is lost or duplicated, plans are reproducible, resumable
from their state, streaming (bounded window) and tight on both budgets."""

from __future__ import annotations

import random

import pytest

from apps.bench.mixture import realistic_mixture
from apps.bench.packing import lower_bounds
from qvltrain.data.packer import (
    MAX_WAIT,
    Budget,
    NextFit,
    OnlineBestFit,
    PlanItem,
    WindowedBestFitDecreasing,
    best_fit_decreasing,
    min_slack_packs,
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
        lambda: WindowedBestFitDecreasing(BUDGET, 64, method="best_fit"),
        lambda: WindowedBestFitDecreasing(BUDGET, 7, carry_packs=3),
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


def test_window_stays_bounded_and_takes_new_items() -> None:
    # At most 8 items a pack (>= 100 of 800 patches): 16 least-filled packs would hold more than
    # half a window, so fewer are carried and every round leaves room for new items.
    items = [PlanItem(f"s{i}", 1 + i % 7, 100 + (37 * i) % 101, i) for i in range(3000)]
    planner = WindowedBestFitDecreasing(BUDGET, 64)
    rounds = 0
    for item in items:
        planner.add(item)
        if planner.ready:
            rounds += 1
            assert len(planner.pending) <= 32
            planner.ready.clear()
        assert len(planner.pending) < 64
    assert rounds > 3000 // 64
    planner.flush()
    assert not planner.pending


def test_no_item_waits_more_than_max_wait_windows() -> None:
    sizes = realistic_mixture(3000, seed=4)
    items = [PlanItem(str(i), s.num_tokens, s.num_patches, i) for i, s in enumerate(sizes)]
    for max_wait in (1, MAX_WAIT):
        planner = WindowedBestFitDecreasing(Budget(seq_len=8192, max_patches=16384), 32, max_wait=max_wait)
        waits = []
        for item in items:
            planner.add(item)
            while (pack := planner.pop()) is not None:
                waits += [item.arrival - waiting.arrival for waiting in pack]
        # Carried while at most max_wait windows arrived after it; a round runs within a window more.
        assert max(waits) <= (max_wait + 1) * 32


def test_resume_from_the_state_plans_the_same_packs() -> None:
    # The state is the window (`pending`) and the packs planned but not popped (`ready`): a planner
    # rebuilt from them mid-stream plans exactly what the uninterrupted one does.
    items = random_items(1500, seed=3)
    whole = [[i.key for i in p] for p in plan_all(WindowedBestFitDecreasing(BUDGET, 50), items)]
    first = WindowedBestFitDecreasing(BUDGET, 50)
    head = []
    for item in items[:777]:
        first.add(item)
        if (pack := first.pop()) is not None:
            head.append([i.key for i in pack])
    resumed = WindowedBestFitDecreasing(BUDGET, 50)
    resumed.pending = [PlanItem(i.key, i.num_tokens, i.num_patches, i.arrival) for i in first.pending]
    resumed.ready.extend(
        [PlanItem(i.key, i.num_tokens, i.num_patches, i.arrival) for i in p] for p in first.ready
    )
    tail = [[i.key for i in p] for p in plan_all(resumed, items[777:])]
    assert head + tail == whole


def test_min_slack_fills_what_best_fit_leaves() -> None:
    # Patches bind (tokens are small): best fit puts 5 and 4 together and needs a third pack for the
    # 2; the least-slack subsets are 5 + 3 + 2 and 4 + 3 + 3.
    budget = Budget(seq_len=1000, max_patches=10)
    items = [PlanItem(f"s{i}", 10, size, i) for i, size in enumerate([5, 4, 3, 3, 3, 2])]
    assert len(best_fit_decreasing(items, budget)) == 3
    packs = min_slack_packs(items, budget)
    assert sorted(sorted(i.num_patches for i in pack) for pack in packs) == [[2, 3, 5], [3, 3, 4]]
    # The other budget still holds: with 25 tokens a pack, no pack takes three items.
    tight = Budget(seq_len=25, max_patches=10)
    assert all(len(pack) <= 2 for pack in min_slack_packs(items, tight))


def test_text_fills_the_token_room_of_patch_bound_packs() -> None:
    # Patches bind; a text item (no patches) joins the pack fullest in patches that has the tokens.
    budget = Budget(seq_len=100, max_patches=10)
    items = [PlanItem("image", 30, 9, 0), PlanItem("small", 30, 4, 1), PlanItem("text", 60, 0, 2)]
    packs = min_slack_packs(items, budget)
    assert [[i.key for i in pack] for pack in packs] == [["image", "text"], ["small"]]


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method='first_fit' is not one of"):
        WindowedBestFitDecreasing(BUDGET, method="first_fit")


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
    assert ours > 0.995
    assert ours >= efficiency(WindowedBestFitDecreasing(budget, 256, method="best_fit"))
    assert ours > efficiency(NextFit(budget)) + 0.1


def test_patch_bound_packs_near_the_lower_bound() -> None:
    # Two patch rows per token: the patches bind. The count is checked against a valid lower bound
    # (apps.bench.packing), not a number seen once.
    sizes = [s for s in realistic_mixture(4000, seed=2) if s.num_patches <= 16384]
    budget = Budget(seq_len=8192, max_patches=16384)
    items = [PlanItem(str(i), s.num_tokens, s.num_patches, i) for i, s in enumerate(sizes)]
    bound = lower_bounds([(s.num_tokens, s.num_patches) for s in sizes], budget)["two_dimensional"]
    ours = len(list(plan_all(WindowedBestFitDecreasing(budget, 256), items)))
    before = len(list(plan_all(WindowedBestFitDecreasing(budget, 256, method="best_fit"), items)))
    assert bound <= ours < before
    assert ours <= 1.015 * bound


def fewest_packs(samples: list[tuple[int, int]], budget: Budget) -> int:
    """The optimum by exhaustive search (a handful of samples)."""
    best = len(samples)
    packs: list[list[int]] = []

    def place(index: int) -> None:
        nonlocal best
        if len(packs) >= best:
            return
        if index == len(samples):
            best = len(packs)
            return
        tokens, patches = samples[index]
        for pack in packs:
            if pack[0] + tokens <= budget.seq_len and pack[1] + patches <= budget.max_patches:
                pack[0], pack[1] = pack[0] + tokens, pack[1] + patches
                place(index + 1)
                pack[0], pack[1] = pack[0] - tokens, pack[1] - patches
        packs.append([tokens, patches])
        place(index + 1)
        packs.pop()

    place(0)
    return best


def test_lower_bounds_never_exceed_the_optimum() -> None:
    # Small instances shaped like the real ones: texts (no patches, up to the whole seq_len) and
    # images whose patches are about 4 per token, with the patches binding (2 per token of budget).
    rng = random.Random(5)
    budget = Budget(seq_len=40, max_patches=80)
    tight = 0
    for _ in range(400):
        samples = []
        for _ in range(rng.randint(1, 7)):
            if rng.random() < 0.3:
                samples.append((rng.randint(1, 40), 0))
            else:
                visual = rng.randint(1, 20)
                samples.append((min(40, visual + rng.randint(0, 12)), 4 * visual))
        bounds = lower_bounds(samples, budget)
        optimum = fewest_packs(samples, budget)
        assert bounds["sum"] <= bounds["l2"] <= bounds["two_dimensional"] <= optimum, samples
        tight += bounds["two_dimensional"] > bounds["l2"]
    assert tight > 0  # the charge for long samples does tighten some bounds
