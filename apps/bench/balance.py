"""Benchmark: step efficiency across data-parallel ranks (mean rank cost / max rank cost per step).

    python -m apps.bench.balance [--workload FILE] [--ranks 8 64] [--lookahead 64]
        [--steps 400] [--family NAME] [--out bench_results/balance.json]

A ZeRO-3 step waits for its slowest rank. Each rank packs its own stream of samples (the planner
of `qvltrain.data.packer`, window `data.pack_window`, seq_len 8192, max_patches 32768) and takes one
pack per micro-batch. The cost of a pack is `qvltrain.data.balance.CostModel` over its samples
(Qwen2-VL-2B training FLOPs, every group trainable: LLM per token and per causal pair, ViT per patch
and per pair within each slice; `--family NAME`: that model family's reference release, from its
FLOP counts) plus the LLM work of its padding tokens. Step efficiency = mean over
ranks / max over ranks of that cost, averaged over steps.

- baseline: today's per-rank packing, packs taken in planning order;
- balanced: the same planner keeping `--lookahead` planned packs; every rank takes, for its k-th pack,
  the one at the shared seeded quantile q_k of its own lookahead's costs (`data.balance_lookahead`).

Both run on the same samples: sample i goes to rank i mod R (as shards split over ranks), in order.
Only steps where every rank still had a full lookahead count (the steady state of an endless run).
Packing efficiency = real tokens / slots of the packs the steps took.

FILE: JSON lines `{"text_tokens": int, "visual_tokens": [int, ...]}`, one entry per image or video in
merged tokens (4 ViT patch rows each); an optional `"visual_frames": [int, ...]` gives each item's
temporal slices (a video's frames / 2; default 1: one slice holds all its patches). Without it, the
mixture of `apps/bench/mixture.py`. Samples over seq_len tokens are left out and counted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from apps.bench.mixture import realistic_mixture
from qvltrain.data.balance import CostModel, take, target_quantile
from qvltrain.data.config import DataConfig
from qvltrain.data.packer import Budget, PlanItem, WindowedBestFitDecreasing

SEQ_LEN = 8192
MAX_PATCHES = 4 * SEQ_LEN


@dataclass
class Workload:
    samples: list[tuple[int, list[tuple[int, int]]]]
    """(LLM tokens, slices (t, patches per slice)) per sample."""
    source: str
    num_left_out: int = 0


def builtin_workload(num_samples: int, seed: int) -> Workload:
    samples = [
        (s.num_tokens, [(t, h * w) for t, h, w in (item.grid_thw for item in s.items)])
        for s in realistic_mixture(num_samples, seed)
    ]
    return Workload(samples, f"built-in mixture (apps/bench/mixture.py, seed {seed})")


def read_workload(path: Path) -> Workload:
    samples, left_out = [], 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, visual = int(row["text_tokens"]), [int(v) for v in row.get("visual_tokens", [])]
            frames = [int(f) for f in row.get("visual_frames", [1] * len(visual))]
            if (
                text < 0
                or any(v <= 0 for v in visual)
                or len(frames) != len(visual)
                or min(frames, default=1) < 1
            ):
                raise ValueError("text_tokens >= 0, visual_tokens > 0 and one visual_frames >= 1 per item")
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: bad workload line ({error}): {line[:200]}") from error
        tokens = text + sum(visual)
        patches = 4 * sum(visual)
        if not 0 < tokens <= SEQ_LEN or patches > MAX_PATCHES:
            left_out += 1
            continue
        slices = [(f, max(1, 4 * v // f)) for v, f in zip(visual, frames, strict=True)]
        samples.append((tokens, slices))
    if not samples:
        raise ValueError(f"{path}: no sample fits seq_len {SEQ_LEN}")
    return Workload(samples, str(path), left_out)


class RankStream:
    """One rank's planner over its share of the workload; `next_pack` as the pipeline takes them."""

    def __init__(self, items: list[PlanItem], window: int, lookahead: int, seed: int):
        # Numbered by arrival at this rank, as each reader of the pipeline numbers its own samples.
        self.items: Iterator[PlanItem] = (replace(item, arrival=n) for n, item in enumerate(items))
        self.lookahead, self.seed = lookahead, seed
        self.planner = WindowedBestFitDecreasing(
            Budget(SEQ_LEN, MAX_PATCHES), window, min_ready=max(1, lookahead)
        )
        self.num_packs = 0

    def next_pack(self) -> list[PlanItem] | None:
        """The next pack, or None once the stream cannot keep the lookahead full."""
        while len(self.planner.ready) < max(1, self.lookahead):
            item = next(self.items, None)
            if item is None:
                return None
            self.planner.add(item)
        self.num_packs += 1
        if self.lookahead:
            return take(self.planner.ready, target_quantile(self.seed, self.num_packs - 1))
        return self.planner.ready.popleft()


def simulate(
    workload: Workload,
    cost_model: CostModel,
    ranks: int,
    lookahead: int,
    window: int,
    seed: int,
    max_steps: int,
) -> dict:
    items = [
        PlanItem(str(i), tokens, sum(t * hw for t, hw in slices), i, cost_model.sample_cost(tokens, slices))
        for i, (tokens, slices) in enumerate(workload.samples)
    ]
    streams = [RankStream(items[rank::ranks], window, lookahead, seed) for rank in range(ranks)]
    efficiencies, real_tokens, num_packs = [], 0, 0
    while len(efficiencies) < max_steps:
        packs = [stream.next_pack() for stream in streams]
        if any(pack is None for pack in packs):
            break
        costs = []
        for pack in packs:
            tokens = sum(item.num_tokens for item in pack)
            costs.append(sum(item.cost for item in pack) + cost_model.llm_token * (SEQ_LEN - tokens))
            real_tokens += tokens
        num_packs += len(packs)
        efficiencies.append(statistics.fmean(costs) / max(costs))
    if not efficiencies:
        raise ValueError(f"{workload.source}: too few samples for one step at {ranks} ranks")
    return {
        "step_efficiency": statistics.fmean(efficiencies),
        "worst_step": min(efficiencies),
        "steps": len(efficiencies),
        "packing_efficiency": real_tokens / (num_packs * SEQ_LEN),
    }


def family_cost_model(family: str | None) -> CostModel:
    """The data layer's default cost model (Qwen2-VL-2B, rounded), or the training FLOPs of the
    family's reference release with every group trainable."""
    if family is None:
        return CostModel()
    from qvltrain.model.family import MODULE_GROUPS, get_family
    from qvltrain.train.flops import balance_cost_model

    return balance_cost_model(get_family(family).reference_flops(), list(MODULE_GROUPS))


def run(
    workload: Workload,
    rank_counts: list[int],
    lookahead: int,
    window: int,
    seed: int,
    steps: int,
    cost_model: CostModel | None = None,
) -> dict:
    cost_model = cost_model or CostModel()
    rows = {}
    for ranks in rank_counts:
        baseline = simulate(workload, cost_model, ranks, 0, window, seed, steps)
        balanced = simulate(workload, cost_model, ranks, lookahead, window, seed, baseline["steps"])
        rows[str(ranks)] = {"baseline": baseline, "balanced": balanced}
    return {
        "workload": workload.source,
        "samples": len(workload.samples),
        "left_out": workload.num_left_out,
        "lookahead": lookahead,
        "window": window,
        "cost_model": vars(cost_model),
        "ranks": rows,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workload", type=Path, default=None)
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--lookahead", type=int, default=64)
    parser.add_argument("--window", type=int, default=DataConfig.pack_window)
    parser.add_argument("--steps", type=int, default=400, help="steps measured per rank count (at most)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--family", default=None, help="model family whose reference release prices the samples"
    )
    parser.add_argument("--out", type=Path, default=Path("bench_results/balance.json"))
    args = parser.parse_args(argv)
    if args.lookahead < 1 or min(args.ranks) < 1:
        parser.error("--lookahead and --ranks must be >= 1")
    if args.workload is None:
        # Enough samples for `steps` steps at the largest rank count, plus the lookahead and a window.
        per_rank = int((args.steps + args.lookahead) * 6.5) + 2 * args.window
        workload = builtin_workload(per_rank * max(args.ranks), args.seed)
    else:
        workload = read_workload(args.workload)
    report = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "seq_len": SEQ_LEN,
        "max_patches": MAX_PATCHES,
        "family": args.family,
        **run(
            workload,
            args.ranks,
            args.lookahead,
            args.window,
            args.seed,
            args.steps,
            family_cost_model(args.family),
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    left = f", {report['left_out']} left out (over seq_len)" if report["left_out"] else ""
    print(
        f"workload: {report['workload']}: {report['samples']} samples{left}; lookahead {args.lookahead} packs"
    )
    for ranks, row in report["ranks"].items():
        base, ours = row["baseline"], row["balanced"]
        print(
            f"ranks={ranks} baseline={base['step_efficiency']:.1%} balanced={ours['step_efficiency']:.1%} "
            f"(worst step {base['worst_step']:.1%} -> {ours['worst_step']:.1%}; {ours['steps']} steps) "
            f"packing={base['packing_efficiency']:.2%} -> {ours['packing_efficiency']:.2%}"
        )
    return report


if __name__ == "__main__":
    main()
