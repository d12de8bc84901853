"""Benchmark: packing efficiency (real tokens / slots) at seq_len 8192 on a realistic mixture.

    python -m apps.bench.packing [--samples 20000] [--out bench_results/packing.json]

Compares, on the same samples in the same arrival order (apps/bench/mixture.py says how the
mixture is made): ours (windowed best-fit-decreasing, data.pack_window) at its default window and
across window sizes; next-fit in arrival order; best fit over 16 open packs; and no packing at all,
padding each micro-batch to its longest sample (samples taken in order while n * longest <= seq_len;
slots = n * longest). Efficiency counts every pack made, the last partial ones included. The cost of
a pack decision is the planner's wall time per sample (planning only: no decode), one core.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

from apps.bench.mixture import SHARES, realistic_mixture
from qvltrain.data.config import DataConfig
from qvltrain.data.packer import Budget, NextFit, OnlineBestFit, PlanItem, WindowedBestFitDecreasing, plan_all

SEQ_LEN = 8192
MAX_PATCHES = 4 * SEQ_LEN  # the tower may see every token's 4 patches; tokens are the binding budget
WINDOWS = (16, 32, 64, 128, 256, 512, 1024)


def measure(make, items: list[PlanItem], total_tokens: int) -> dict:
    start = time.perf_counter()
    packs = list(plan_all(make(), items))
    seconds = time.perf_counter() - start
    return {
        "efficiency": total_tokens / (len(packs) * SEQ_LEN),
        "packs": len(packs),
        "us_per_sample": seconds / len(items) * 1e6,
    }


def padded_to_longest(lengths: list[int]) -> dict:
    slots = count = longest = batches = 0
    for length in lengths:
        if count and (count + 1) * max(longest, length) > SEQ_LEN:
            slots, batches, count, longest = slots + count * longest, batches + 1, 0, 0
        count, longest = count + 1, max(longest, length)
    slots, batches = slots + count * longest, batches + 1
    return {"efficiency": sum(lengths) / slots, "packs": batches, "us_per_sample": 0.0}


def run(num_samples: int, seed: int) -> dict:
    sizes = realistic_mixture(num_samples, seed)
    budget = Budget(SEQ_LEN, MAX_PATCHES)
    items = [PlanItem(str(i), s.num_tokens, s.num_patches, i) for i, s in enumerate(sizes)]
    total = sum(s.num_tokens for s in sizes)
    default_window = DataConfig.pack_window
    results = {
        f"ours (window {default_window})": measure(
            lambda: WindowedBestFitDecreasing(budget, default_window), items, total
        ),
        "next-fit, arrival order": measure(lambda: NextFit(budget), items, total),
        "best-fit, 16 open packs": measure(lambda: OnlineBestFit(budget, 16), items, total),
        "padding to the longest": padded_to_longest([s.num_tokens for s in sizes]),
    }
    windows = {
        str(window): measure(lambda w=window: WindowedBestFitDecreasing(budget, w), items, total)
        for window in WINDOWS
    }
    mixture = {
        "samples": num_samples,
        "mean_tokens": statistics.mean(s.num_tokens for s in sizes),
        "visual_token_share": sum(s.num_visual_tokens for s in sizes) / total,
        "shares": dict(SHARES),
        "lower_bound_packs": -(-total // SEQ_LEN),
    }
    return {"mixture": mixture, "methods": results, "ours_by_window": windows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_results/packing.json"))
    args = parser.parse_args(argv)
    report = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "seq_len": SEQ_LEN,
        "max_patches": MAX_PATCHES,
        **run(args.samples, args.seed),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    mixture = report["mixture"]
    print(
        f"mixture: {mixture['samples']} samples, mean {mixture['mean_tokens']:.0f} tokens, "
        f"{mixture['visual_token_share']:.0%} visual; at least {mixture['lower_bound_packs']} packs of {SEQ_LEN}"
    )
    print("| method | efficiency | packs | us / sample |\n|---|---|---|---|")
    for name, row in report["methods"].items():
        print(f"| {name} | {row['efficiency']:.2%} | {row['packs']} | {row['us_per_sample']:.2f} |")
    print("\n| window | efficiency | packs | us / sample |\n|---|---|---|---|")
    for window, row in report["ours_by_window"].items():
        print(f"| {window} | {row['efficiency']:.2%} | {row['packs']} | {row['us_per_sample']:.2f} |")
    return report


if __name__ == "__main__":
    main()
