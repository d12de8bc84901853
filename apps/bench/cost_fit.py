"""Calibrate the balance's cost model from measured step phases: seconds per FLOP of each cost term.

    python -m apps.bench.cost_fit [--flavor tiny] [--seq-len 4096] [--num-tokens 60000]
        [--out bench_results/cost_fit.json]

Packs of the packing benchmark's mixture (apps/bench/train_data.py: real shapes, random ids and
pixels) are regrouped from text-only to all-visual (samples sorted by visual share, then filled in
that order), so the packs span the range of compositions a run meets. Each pack trains one step on
the trainer's engine (DeepSpeed ZeRO-3, world of one, full_pretrain) with the phase clock of
apps/bench/step_profile.py; after a warm-up pass, the fastest of `--rounds` passes per pack counts.
Per pack the four terms of `CostModel` are counted in training FLOPs (`balance_cost_model` of the
flavor's shape) and two least-squares fits give seconds per FLOP:

    vision seconds (tower + merger forward and backward) = c_patch * F_patch + c_pair * F_vision_pairs + c0
    LLM seconds (decoder, LM head, loss, forward and backward) = c_token * F_token + c_pair * F_llm_pairs + c1

plus a fixed time per pack (the dummy patch, per-call overheads: the same for every pack, so it
never changes which pack costs more). Coefficients are non-negative: a term whose fit would be
negative is dropped and the other refitted. Reported: each fit's RMS error over the packs relative
to the mean measured time, the same for plain FLOPs (one rate for all terms), and
`data.balance_calibration` (the four seconds-per-FLOP relative to the plain-FLOPs rate).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import date
from pathlib import Path

import torch

from apps.bench.step_profile import (
    LLM_BACKWARD,
    LLM_FORWARD,
    LOSS_BACKWARD,
    LOSS_FORWARD,
    VISION_BACKWARD,
    VISION_FORWARD,
    PhaseClock,
    attach,
)
from apps.bench.train_data import bench_steps
from apps.bench.train_run import RunOptions, build_engine, flavor_config, micro_batches, train_step
from qvltrain.data.decode import DecodedSample
from qvltrain.model.family import MODULE_GROUPS, FlopModel, get_family
from qvltrain.train.distributed import init_distributed
from qvltrain.train.flops import balance_cost_model

VISION = (VISION_FORWARD, VISION_BACKWARD)
LLM = (LLM_FORWARD, LLM_BACKWARD, LOSS_FORWARD, LOSS_BACKWARD)


def regroup(samples: list[DecodedSample], seq_len: int) -> list[list[DecodedSample]]:
    """Packs filled in order of the samples' visual share: from text-only packs to all-visual ones."""
    ordered = sorted(samples, key=lambda s: (float((s.mm_token_type_ids > 0).float().mean()), s.key))
    packs, current, used = [], [], 0
    for sample in ordered:
        if used + len(sample.input_ids) > seq_len and current:
            packs.append(current)
            current, used = [], 0
        current.append(sample)
        used += len(sample.input_ids)
    return packs + ([current] if current else [])


def pack_terms(pack: list[DecodedSample], shape: FlopModel) -> list[float]:
    """FLOPs of the four cost terms of one pack: LLM tokens, LLM pairs, vision patches, vision pairs."""
    model = balance_cost_model(shape, list(MODULE_GROUPS))
    totals = [0.0, 0.0, 0.0, 0.0]
    for sample in pack:
        slices = [(t, h * w) for t, h, w in (p.grid_thw for p in sample.patches)]
        for index, value in enumerate(model.terms(len(sample.input_ids), slices)):
            totals[index] += value
    coefficients = (model.llm_token, model.llm_pair, model.vision_patch, model.vision_pair)
    return [value * coefficient for value, coefficient in zip(totals, coefficients, strict=True)]


def fit_two(x1: list[float], x2: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least squares y = a x1 + b x2 + c with a, b >= 0 (c: per-pack time no sample term explains)."""

    def solve(columns: list[list[float]]) -> list[float]:
        design = torch.tensor([*columns, [1.0] * len(y)], dtype=torch.float64).T
        return torch.linalg.lstsq(design, torch.tensor(y, dtype=torch.float64)).solution.tolist()

    a, b, c = solve([x1, x2])
    if a >= 0 and b >= 0:
        return a, b, c
    fits = [solve([x1]), solve([x2])]
    errors = [
        sum((v - s[0] * u - s[1]) ** 2 for u, v in zip(x, y, strict=True))
        for s, x in zip(fits, (x1, x2), strict=True)
    ]
    (slope, intercept) = fits[0] if errors[0] <= errors[1] else fits[1]
    return (max(slope, 0.0), 0.0, intercept) if errors[0] <= errors[1] else (0.0, max(slope, 0.0), intercept)


def normalized_rms(predicted: list[float], measured: list[float]) -> float:
    """RMS of the error over the packs, relative to the mean measured time."""
    mean_square = sum((p - m) ** 2 for p, m in zip(predicted, measured, strict=True)) / len(measured)
    return mean_square**0.5 / (sum(measured) / len(measured))


def run(flavor: str, seq_len: int, num_tokens: int, rounds: int, seed: int) -> dict:
    init_distributed()
    from qvltrain.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(None)
    options = RunOptions(variant="packed", flavor=flavor, seq_len=seq_len, num_tokens=num_tokens, seed=seed)
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    model_config = flavor_config(flavor, None)
    family = get_family(model_config.family)
    engine = build_engine(options, model_config, tokenizer, on_gpu=on_gpu)
    engine.train()
    shape = family.flops(engine.module.model.config)
    packs = regroup(bench_steps(tokenizer, seq_len, num_tokens, seed).samples, seq_len)
    host = [micro_batches(options, pack, tokenizer.pad_token_id) for pack in packs]
    train_step(engine, options, host[0], device)  # warm-up
    best: list[dict[str, float] | None] = [None] * len(packs)
    order = list(range(len(host)))
    for round_index in range(rounds):
        # Another order each round, so a busy spell of the machine does not hit the same packs.
        random.Random(round_index).shuffle(order)
        for index in order:
            batches = host[index]
            clock = PhaseClock(synchronize=on_gpu)
            handles = attach(clock, family.parts(engine.module.model))
            train_step(engine, options, batches, device, clock)
            for handle in handles:
                handle.remove()
            seconds = {
                "vision": sum(clock.seconds[p] for p in VISION),
                "llm": sum(clock.seconds[p] for p in LLM),
            }
            if best[index] is None or sum(seconds.values()) < sum(best[index].values()):
                best[index] = seconds
    terms = [pack_terms(pack, shape) for pack in packs]
    vision_s = [b["vision"] for b in best]
    llm_s = [b["llm"] for b in best]
    c_token, c_llm_pair, llm_fixed = fit_two([t[0] for t in terms], [t[1] for t in terms], llm_s)
    c_patch, c_vision_pair, vision_fixed = fit_two([t[2] for t in terms], [t[3] for t in terms], vision_s)
    vision_fit = [c_patch * t[2] + c_vision_pair * t[3] + vision_fixed for t in terms]
    llm_fit = [c_token * t[0] + c_llm_pair * t[1] + llm_fixed for t in terms]
    measured = [v + m for v, m in zip(vision_s, llm_s, strict=True)]
    # Plain FLOPs for comparison: one rate for all terms, plus the same kind of fixed part.
    plain_rate, _, plain_fixed = fit_two([sum(t) for t in terms], [0.0] * len(terms), measured)
    return {
        "flavor": flavor,
        "seq_len": seq_len,
        "packs": [
            {"samples": len(p), "tokens": sum(len(s.input_ids) for s in p), "terms_flops": t, **b}
            for p, t, b in zip(packs, terms, best, strict=True)
        ],
        "seconds_per_flop": {
            "llm_token": c_token,
            "llm_pair": c_llm_pair,
            "vision_patch": c_patch,
            "vision_pair": c_vision_pair,
        },
        "fixed_seconds_per_pack": {"llm": llm_fixed, "vision": vision_fixed},
        # Relative to the plain-FLOPs rate: 1 means "as fast per FLOP as the step on average".
        "balance_calibration": [c / plain_rate for c in (c_token, c_llm_pair, c_patch, c_vision_pair)],
        "fit_error": {
            "vision": normalized_rms(vision_fit, vision_s),
            "llm": normalized_rms(llm_fit, llm_s),
            "pack (vision + llm)": normalized_rms(
                [v + m for v, m in zip(vision_fit, llm_fit, strict=True)], measured
            ),
            "pack, plain FLOPs": normalized_rms([plain_rate * sum(t) + plain_fixed for t in terms], measured),
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flavor", default="tiny")
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--num-tokens", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_results/cost_fit.json"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        **run(args.flavor, args.seq_len, args.num_tokens, args.rounds, args.seed),
        "wall_s": 0.0,
    }
    report["wall_s"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{len(report['packs'])} packs of {args.seq_len} tokens, {args.flavor} flavor; seconds per FLOP:")
    for name, value in report["seconds_per_flop"].items():
        print(f"  {name}: {value:.3e}")
    print(
        "RMS error over packs / mean measured time: "
        + ", ".join(f"{k} {v:.1%}" for k, v in report["fit_error"].items())
    )
    print("data.balance_calibration=[" + ",".join(f"{v:.4g}" for v in report["balance_calibration"]) + "]")
    return report


if __name__ == "__main__":
    import os

    main()
    os._exit(0)  # skip the slow teardown of the process group
