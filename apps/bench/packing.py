"""Benchmark: packing efficiency (real tokens / slots) at seq_len 8192 on a realistic mixture.

    python -m apps.bench.packing [--samples 20000] [--workload FILE] [--max-patches N]
        [--out bench_results/packing.json]

Compares, on the same samples in the same arrival order (apps/bench/mixture.py says how the
mixture is made): ours (`qvltrain.data.packer.WindowedBestFitDecreasing`, rounds filled by minimum
slack, data.pack_window) and before (the same window filled by best fit, `method="best_fit"`), both
at the default window and across window sizes; next-fit in arrival order; best fit over 16 open
packs; and no packing at all,
padding each micro-batch to its longest sample (samples taken in order while n * longest <= seq_len;
slots = n * longest). Efficiency counts every pack made, the last partial ones included. The cost of
a pack decision is the planner's wall time per sample (planning only: no decode), one core.

`--workload FILE` packs the samples of a workload file instead (JSON lines, the format of
`apps.bench.balance`). `--max-patches` sets the patch budget (default 4 per token: the tokens bind;
2 per token makes the patches bind). Lower bounds on the number of packs (`lower_bounds`): sums =
the larger of ceil(tokens / seq_len) and ceil(patches / max_patches); L2 = the larger of Martello
and Toth's bounds on each budget alone (items over half a budget need a pack each, and items of at
least k cannot share a pack with items over the budget - k), tighter when many samples hold a third
to a half of the patch budget; 2D = L2 of the patches with long samples charged for the patches
their tokens keep out of their pack (an 8192-token text shares a pack with no image). Each is valid
for packing on both budgets at once.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from bisect import bisect_left, bisect_right
from datetime import date
from fractions import Fraction
from pathlib import Path

from apps.bench.balance import read_workload
from apps.bench.mixture import SHARES, SampleSize, realistic_mixture
from qvltrain.data.config import DataConfig
from qvltrain.data.packer import Budget, NextFit, OnlineBestFit, PlanItem, WindowedBestFitDecreasing, plan_all

SEQ_LEN = 8192
MAX_PATCHES = 4 * SEQ_LEN  # the tower may see every token's 4 patches; tokens are the binding budget


def patch_lower_bound(patches: list[int], capacity: int) -> int:
    """Martello and Toth's L2 bound for one-dimensional bin packing of `patches` into `capacity`.

    For every k (0 and each size up to half the capacity): items over capacity - k need a pack each
    (nothing of size >= k joins them), items over half need a pack each, and what the items of
    k..capacity/2 do not fit into the room those leave needs further packs.
    """
    sizes = sorted(patches)
    prefix = [0]
    for size in sizes:
        prefix.append(prefix[-1] + size)
    half_end = bisect_right(sizes, capacity // 2)  # sizes[:half_end] <= capacity // 2
    best = 0
    for k in sorted({0, *sizes[:half_end]}):
        big_end = bisect_right(sizes, capacity - k)  # sizes[half_end:big_end]: over half, <= capacity - k
        num_over, num_big = len(sizes) - big_end, big_end - half_end
        room = num_big * capacity - (prefix[big_end] - prefix[half_end])
        rest = prefix[half_end] - prefix[bisect_left(sizes, k)]
        best = max(best, num_over + num_big + max(0, -(-(rest - room) // capacity)))
    return best


def lower_bounds(samples: list[tuple[int, int]], budget: Budget) -> dict:
    """Lower bounds on the packs any planner needs for (tokens, patches) `samples`.

    "sum": the larger of ceil(tokens / seq_len) and ceil(patches / max_patches). "l2": the larger
    of the L2 bounds of the two budgets alone (each valid for two budgets too). "two_dimensional": L2
    of the patches after charging long samples for the patches they keep out: with r = the largest
    patches / tokens of any sample, a pack holding a sample of t > seq_len / 2 tokens (at most one
    such sample a pack) has at most r * (seq_len - t) patches in its other samples, so that sample
    may count as max(patches, r * t - (r * seq_len - max_patches)) patches and no pack exceeds
    max_patches (an 8192-token text, which shares no pack with any image, counts as a full pack).
    """
    tokens, patches = [t for t, _ in samples], [p for _, p in samples]
    ratio = max((Fraction(p, t) for t, p in samples), default=Fraction(0))
    spare = ratio * budget.seq_len - budget.max_patches  # > 0: long samples keep patches out
    charged = [
        max(p, int(ratio * t - spare)) if spare > 0 and 2 * t > budget.seq_len else p for t, p in samples
    ]
    by_sum = max(-(-sum(tokens) // budget.seq_len), -(-sum(patches) // budget.max_patches))
    l2 = max(
        by_sum, patch_lower_bound(tokens, budget.seq_len), patch_lower_bound(patches, budget.max_patches)
    )
    return {
        "sum": by_sum,
        "l2": l2,
        "two_dimensional": max(l2, patch_lower_bound(charged, budget.max_patches)),
    }


WINDOWS = (16, 32, 64, 128, 256, 512, 1024)


def measure(make, items: list[PlanItem], total_tokens: int, bounds: dict) -> dict:
    start = time.perf_counter()
    packs = list(plan_all(make(), items))
    seconds = time.perf_counter() - start
    return {
        "efficiency": total_tokens / (len(packs) * SEQ_LEN),
        "packs": len(packs),
        "over_l2": len(packs) / bounds["l2"] - 1,
        "over_two_dimensional": len(packs) / bounds["two_dimensional"] - 1,
        "us_per_sample": seconds / len(items) * 1e6,
    }


def padded_to_longest(lengths: list[int]) -> dict:
    slots = count = longest = batches = 0
    for length in lengths:
        if count and (count + 1) * max(longest, length) > SEQ_LEN:
            slots, batches, count, longest = slots + count * longest, batches + 1, 0, 0
        count, longest = count + 1, max(longest, length)
    slots, batches = slots + count * longest, batches + 1
    return {
        "efficiency": sum(lengths) / slots,
        "packs": batches,
        "over_l2": None,
        "over_two_dimensional": None,
        "us_per_sample": 0.0,
    }


def run(sizes: list[SampleSize], max_patches: int) -> dict:
    budget = Budget(SEQ_LEN, max_patches)
    sizes = [s for s in sizes if s.num_patches <= max_patches]
    items = [PlanItem(str(i), s.num_tokens, s.num_patches, i) for i, s in enumerate(sizes)]
    total = sum(s.num_tokens for s in sizes)
    bounds = lower_bounds([(s.num_tokens, s.num_patches) for s in sizes], budget)
    window = DataConfig.pack_window

    def ours(method: str, size: int = window):
        # "best_fit" as it was before min slack: one pack carried, no bound on the wait.
        extra = {"max_wait": None} if method == "best_fit" else {}
        return lambda: WindowedBestFitDecreasing(budget, size, method=method, **extra)

    results = {
        f"ours: min slack (window {window})": measure(ours("min_slack"), items, total, bounds),
        f"before: best fit (window {window})": measure(ours("best_fit"), items, total, bounds),
        "next-fit, arrival order": measure(lambda: NextFit(budget), items, total, bounds),
        "best-fit, 16 open packs": measure(lambda: OnlineBestFit(budget, 16), items, total, bounds),
        "padding to the longest": padded_to_longest([s.num_tokens for s in sizes]),
    }
    windows = {
        method: {str(size): measure(ours(method, size), items, total, bounds) for size in WINDOWS}
        for method in ("min_slack", "best_fit")
    }
    mixture = {
        "samples": len(sizes),
        "mean_tokens": statistics.mean(s.num_tokens for s in sizes),
        "visual_token_share": sum(s.num_visual_tokens for s in sizes) / total,
        "lower_bounds": bounds,
    }
    return {"mixture": mixture, "methods": results, "by_window": windows}


def workload_sizes(path: Path) -> list[SampleSize]:
    """A workload file's samples as SampleSize (visual tokens = patches / 4)."""
    return [
        SampleSize("workload", tokens, sum(t * hw for t, hw in slices), sum(t * hw for t, hw in slices) // 4)
        for tokens, slices in read_workload(path).samples
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workload", type=Path, default=None, help="JSON lines (apps.bench.balance format)")
    parser.add_argument("--max-patches", type=int, default=MAX_PATCHES, help="patch rows per pack")
    parser.add_argument("--out", type=Path, default=Path("bench_results/packing.json"))
    args = parser.parse_args(argv)
    report = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "seq_len": SEQ_LEN,
        "max_patches": args.max_patches,
        "workload": str(args.workload) if args.workload else f"built-in mixture, seed {args.seed}",
        **run(
            workload_sizes(args.workload) if args.workload else realistic_mixture(args.samples, args.seed),
            args.max_patches,
        ),
    }
    if args.workload is None:
        report["mixture"]["shares"] = dict(SHARES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    mixture, bounds = report["mixture"], report["mixture"]["lower_bounds"]
    print(
        f"{report['workload']}: {mixture['samples']} samples, mean {mixture['mean_tokens']:.0f} tokens, "
        f"{mixture['visual_token_share']:.0%} visual; seq_len {SEQ_LEN}, max_patches {args.max_patches}; "
        f"at least {bounds['two_dimensional']} packs (L2 {bounds['l2']}, sums {bounds['sum']})"
    )

    def row(name: str, result: dict) -> str:
        over = [
            "-" if result[key] is None else f"{result[key]:+.2%}"
            for key in ("over_l2", "over_two_dimensional")
        ]
        return (
            f"| {name} | {result['efficiency']:.2%} | {result['packs']} | {over[0]} | {over[1]} "
            f"| {result['us_per_sample']:.2f} |"
        )

    header = "| {} | efficiency | packs | vs L2 | vs 2D bound | us / sample |\n|---|---|---|---|---|---|"
    print(header.format("method"))
    for name, result in report["methods"].items():
        print(row(name, result))
    for method, results in report["by_window"].items():
        print("\n" + header.format(f"{method} by window"))
        for window, result in results.items():
            print(row(window, result))
    return report


if __name__ == "__main__":
    main()
