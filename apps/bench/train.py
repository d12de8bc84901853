"""Benchmark: training-step speed, (a) a baseline as users run today vs (b) qvltrain, same device.

    python -m apps.bench.train [--flavor tiny|qwen2vl_2b|...] [--seq-len 8192] [--num-tokens N]
        [--activation-checkpointing none|llm|vision|both] [--samples-per-micro-batch 1]
        [--out bench_results/train.json]

(a) baseline: one sample per micro-batch (`--samples-per-micro-batch k` pads k samples to the
    longest with an attention mask), transformers' forward with sdpa, full logits and its plain
    cross-entropy, the vision tower called once per image or video, gradient accumulation.
(b) qvltrain: packs of seq_len tokens from the windowed best-fit-decreasing packer,
    `VisionLanguageTrainModule` (packed varlen attention, the tower once per pack, chunked loss).
Same model (random init, fixed seed: weights do not change speed), same samples of the packing
benchmark's mixture, same optimizer steps (a step is one pack's samples), DeepSpeed ZeRO-3, AdamW;
fp32 on CPU, bf16 on GPU. Each variant runs in its own process (peak memory is its own: ru_maxrss on
CPU, torch.cuda.max_memory_allocated on GPU); forward + backward + optimizer step are timed after
warm-up, fastest of `--rounds` passes. Model FLOPs (qvltrain/train/flops.py) count the useful work
of the samples, identical for both variants; MFU needs the device's peak (GPU, or --peak-flops).
The JSON also holds a phase profile of one step of each variant (apps/bench/step_profile.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import torch

from apps.bench.step_profile import PHASES
from apps.bench.train_run import VARIANTS


def label(variant: str, result: dict) -> str:
    if variant == "packed":
        return "(b) qvltrain: packed, varlen, chunked loss"
    k = result["options"]["samples_per_micro_batch"]
    return f"(a) baseline: {k} sample{'s' if k > 1 else ''} / micro-batch, sdpa, full logits"


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        result_path = Path(folder) / f"{variant}.json"
        command = [
            sys.executable, "-m", "apps.bench.train_run", "--variant", variant,
            "--flavor", args.flavor, "--seq-len", str(args.seq_len), "--num-tokens", str(args.num_tokens),
            "--samples-per-micro-batch", str(args.samples_per_micro_batch),
            "--warmup-steps", str(args.warmup_steps), "--rounds", str(args.rounds),
            "--seed", str(args.seed), "--result", str(result_path),
        ]  # fmt: skip
        if args.activation_checkpointing:
            command += ["--activation-checkpointing", args.activation_checkpointing]
        if args.peak_flops:
            command += ["--peak-flops", str(args.peak_flops)]
        if args.no_profile:
            command.append("--no-profile")
        # A fresh world of one per variant: no launcher variables from the parent's environment.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")
        }
        completed = subprocess.run(command, capture_output=True, text=True, env=env)
        if completed.returncode != 0:
            raise RuntimeError(
                f"variant {variant} failed ({completed.returncode}):\n{completed.stderr[-4000:]}"
            )
        return json.loads(result_path.read_text())


def summarise(results: dict[str, dict]) -> dict:
    baseline = results["baseline"]["tokens_per_s"]
    summary = {}
    for variant, result in results.items():
        flops_per_s = result["model_flops"] / result["seconds"]
        peak = result.get("peak_flops")
        summary[variant] = {
            "tokens_per_s": result["tokens_per_s"],
            "ratio_vs_baseline": result["tokens_per_s"] / baseline,
            "model_tflops_per_s": flops_per_s / 1e12,
            "mfu": flops_per_s / peak if peak else None,
            "peak_memory_gb": result["peak_memory_gb"],
            "slot_efficiency": result["real_tokens"] / result["token_slots"],
        }
    return summary


def print_tables(report: dict) -> None:
    first = report["variants"]["baseline"]
    print(
        f"{report['device']}, flavor {report['flavor']}, {first['dtype']}, ZeRO-3, seq_len {report['seq_len']}, "
        f"activation checkpointing {first['activation_checkpointing']}; {first['num_samples']} samples, "
        f"{first['real_tokens']} real tokens ({first['visual_token_share']:.0%} visual) in {first['num_steps']} "
        f"optimizer steps (packs {first['pack_efficiency']:.1%} full)"
    )
    print(
        "| variant | micro-batches | real / slots | tokens/s | vs (a) | model TFLOP/s | MFU | peak memory GB |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for variant in VARIANTS:
        result, row = report["variants"][variant], report["summary"][variant]
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a (CPU)"
        print(
            f"| {label(variant, result)} | {result['num_micro_batches']} | {row['slot_efficiency']:.1%} | "
            f"{row['tokens_per_s']:.0f} | {row['ratio_vs_baseline']:.2f}x | {row['model_tflops_per_s']:.3f} | "
            f"{mfu} | {row['peak_memory_gb']:.2f} |"
        )
    if all("profile" in report["variants"][v] for v in VARIANTS):
        print(
            "\nOne step (the first pack's samples), time by phase:\n| phase | (a) s | (a) share | (b) s | (b) share |"
        )
        print("|---|---|---|---|---|")
        profiles = [report["variants"][v]["profile"] for v in VARIANTS]
        for phase in PHASES:
            cells = [f"{p['phases'][phase]:.3f} | {p['phases'][phase] / p['seconds']:.1%}" for p in profiles]
            print(f"| {phase} | {' | '.join(cells)} |")
        print(f"| total | {profiles[0]['seconds']:.3f} | 100% | {profiles[1]['seconds']:.3f} | 100% |")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    on_gpu = torch.cuda.is_available()
    parser.add_argument("--flavor", default="qwen2vl_2b" if on_gpu else "tiny")
    parser.add_argument("--seq-len", type=int, default=8192)
    parser.add_argument(
        "--num-tokens", type=int, default=(16 if on_gpu else 8) * 8192, help="about the real tokens of a pass"
    )
    parser.add_argument(
        "--activation-checkpointing",
        # On one GPU the vision tower's activations of an 8192-token pack (~26k patches, 32 blocks of
        # width 1280) are ~45 GB on top of 35 GB of unsharded 2B model states: checkpoint both there.
        default="both" if on_gpu else None,
        help="none | llm | vision | both (default: both on GPU, the flavor's setting on CPU)",
    )
    parser.add_argument("--samples-per-micro-batch", type=int, default=1, help="baseline only")
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="timed passes per process; the fastest counts")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1 if on_gpu else 2,
        help="processes per variant, alternating a, b, a, b",
    )
    parser.add_argument("--peak-flops", type=float, default=None, help="device peak FLOP/s for MFU")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_results/train.json"))
    args = parser.parse_args(argv)

    import deepspeed
    import transformers

    # Variants alternate (a, b, a, b, ...) so a shared machine's load hits both alike; the fastest
    # process of each counts.
    results: dict[str, dict] = {}
    for repeat in range(args.repeats):
        for variant in VARIANTS:
            print(f"running {variant} ({repeat + 1}/{args.repeats}) ...", flush=True)
            result = run_variant(variant, args)
            result["process_seconds"] = results.get(variant, {}).get("process_seconds", []) + [
                result["seconds"]
            ]
            if variant not in results or result["seconds"] < results[variant]["seconds"]:
                results[variant] = result
            else:
                results[variant]["process_seconds"] = result["process_seconds"]
    report = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
        "device": results["packed"]["device"],
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "deepspeed": deepspeed.__version__,
            "transformers": transformers.__version__,
        },
        "flavor": args.flavor,
        "seq_len": args.seq_len,
        "summary": summarise(results),
        "variants": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
