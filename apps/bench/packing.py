"""Benchmark: packing efficiency (real tokens / slots) at seq_len 8192 on a realistic mixture.

    python -m apps.bench.packing [--samples 20000] [--workload FILE] [--max-patches N]
        [--out bench_results/packing.json]

Compares, on the same samples in the same arrival order (apps/bench/mixture.py says how the
mixture is made): ours (windowed best-fit-decreasing, data.pack_window) at its default window and
across window sizes; next-fit in arrival order; best fit over 16 open packs; and no packing at all,
padding each micro-batch to its longest sample (samples taken in order while n * longest <= seq_len;
slots = n * longest). Efficiency counts every pack made, the last partial ones included. The cost of
a pack decision is the planner's wall time per sample (planning only: no decode), one core.

`--workload FILE` packs the samples of a workload file instead (JSON lines, the format of
`apps.bench.balance`). `--max-patches` sets the patch budget (default 4 per token: the tokens bind;
2 per token makes the patches bind). Lower bounds on the number of packs: L1 = the larger of
ceil(tokens / seq_len) and ceil(patches / max_patches); L2 = Martello and Toth's bound on the patches
alone (items over half the budget need a pack each, and items of at least k patches cannot share a
pack with items over max_patches - k), which is tighter when many samples hold a third to a half of
the patch budget.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

from apps.bench.balance import read_workload
from apps.bench.mixture import SHARES, SampleSize, realistic_mixture
from qvltrain.data.config import DataConfig
from qvltrain.data.packer import Budget, NextFit, OnlineBestFit, PlanItem, WindowedBestFitDecreasing, plan_all

SEQ_LEN = 8192
MAX_PATCHES = 4 * SEQ_LEN  # the tower may see every token's 4 patches; tokens are the binding budget


def patch_lower_bound(patches: list[int], capacity: int) -> int:
    """Martello and Toth's L2 bound for one-dimensional bin packing of `patches` into `capacity`."""
    sizes = sorted(patches, reverse=True)
    best = 0
    for k in sorted({0, *(size for size in sizes if size <= capacity // 2)}):
        over = [size for size in sizes if size > capacity - k]
        big = [size for size in sizes if capacity // 2 < size <= capacity - k]
        rest = sum(size for size in sizes if k <= size <= capacity // 2)
        room = len(big) * capacity - sum(big)
        best = max(best, len(over) + len(big) + max(0, -(-(rest - room) // capacity)))
    return best


WINDOWS = (16, 32, 64, 128, 256, 512, 1024)


def measure(make, items: list[PlanItem], total_tokens: int, lower_bound: int) -> dict:
    start = time.perf_counter()
    packs = list(plan_all(make(), items))
    seconds = time.perf_counter() - start
    return {
        "efficiency": total_tokens / (len(packs) * SEQ_LEN),
        "packs": len(packs),
        "over_lower_bound": len(packs) / lower_bound - 1,
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
        "over_lower_bound": None,
        "us_per_sample": 0.0,
    }


def run(sizes: list[SampleSize], max_patches: int) -> dict:
    budget = Budget(SEQ_LEN, max_patches)
    sizes = [s for s in sizes if s.num_patches <= max_patches]
    items = [PlanItem(str(i), s.num_tokens, s.num_patches, i) for i, s in enumerate(sizes)]
    total = sum(s.num_tokens for s in sizes)
    lower_l1 = max(-(-total // SEQ_LEN), -(-sum(s.num_patches for s in sizes) // max_patches))
    lower = max(lower_l1, patch_lower_bound([s.num_patches for s in sizes], max_patches))
    default_window = DataConfig.pack_window
    results = {
        f"ours (window {default_window})": measure(
            lambda: WindowedBestFitDecreasing(budget, default_window), items, total, lower
        ),
        "next-fit, arrival order": measure(lambda: NextFit(budget), items, total, lower),
        "best-fit, 16 open packs": measure(lambda: OnlineBestFit(budget, 16), items, total, lower),
        "padding to the longest": padded_to_longest([s.num_tokens for s in sizes]),
    }
    windows = {
        str(window): measure(lambda w=window: WindowedBestFitDecreasing(budget, w), items, total, lower)
        for window in WINDOWS
    }
    mixture = {
        "samples": len(sizes),
        "mean_tokens": statistics.mean(s.num_tokens for s in sizes),
        "visual_token_share": sum(s.num_visual_tokens for s in sizes) / total,
        "lower_bound_packs_l1": lower_l1,
        "lower_bound_packs": lower,
    }
    return {"mixture": mixture, "methods": results, "ours_by_window": windows}


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
    mixture = report["mixture"]
    print(
        f"{report['workload']}: {mixture['samples']} samples, mean {mixture['mean_tokens']:.0f} tokens, "
        f"{mixture['visual_token_share']:.0%} visual; seq_len {SEQ_LEN}, max_patches {args.max_patches}; "
        f"at least {mixture['lower_bound_packs']} packs (L1 {mixture['lower_bound_packs_l1']})"
    )

    def over(row: dict) -> str:
        return "-" if row["over_lower_bound"] is None else f"{row['over_lower_bound']:+.2%}"

    print("| method | efficiency | packs | vs lower bound | us / sample |\n|---|---|---|---|---|")
    for name, row in report["methods"].items():
        print(
            f"| {name} | {row['efficiency']:.2%} | {row['packs']} | {over(row)} | {row['us_per_sample']:.2f} |"
        )
    print("\n| window | efficiency | packs | vs lower bound | us / sample |\n|---|---|---|---|---|")
    for window, row in report["ours_by_window"].items():
        print(
            f"| {window} | {row['efficiency']:.2%} | {row['packs']} | {over(row)} | {row['us_per_sample']:.2f} |"
        )
    return report


if __name__ == "__main__":
    main()
