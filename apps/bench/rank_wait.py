"""Measurement: how long ranks wait for each other in a real 2-rank ZeRO-3 run, without and with balance.

    python -m apps.bench.rank_wait [--steps 24] [--lookahead 16] [--repeats 1]
        [--out bench_results/rank_wait.json]

Writes a mixed shard set (text-only samples of 150..700 words, one photo of 200..560 px under a
256-token budget, or a video of 4..8 frames at 224 px), then runs `deepspeed --num_gpus 2
launch/train.py +stage=full_pretrain` (tiny flavor, 2 CPU ranks, gloo, ZeRO-3, seq_len 1024,
max_patches 4096, one thread per rank) twice on the same data: `data.balance_lookahead=0` (before:
each rank takes its packs in planning order) and `=--lookahead` (after). Reported per run from
RUN/metrics.jsonl, after the first 2 steps (warm-up): the mean `rank_wait_share` (each rank's share of
the step spent blocked in collectives: wall time minus its CPU time, qvltrain.train.metrics.WaitClock,
averaged over the ranks), `rank_work_balance` (mean / max of the ranks' CPU work in the step, which
time lost to other processes on a busy machine does not blur) and the mean step time. `--repeats`
alternates before/after runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from PIL import Image

from qvltrain.data.config import DatasetConfig
from qvltrain.data.decode import SampleDecoder
from qvltrain.shards.writer import ShardWriter
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.train.distributed import free_port
from qvltrain.vision.budgets import ImageBudget, VideoBudget

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_BUDGET = ImageBudget(min_pixels=3136, max_pixels=256 * 784)
VIDEO_BUDGET = VideoBudget(total_pixels=8 * 50176, min_pixels=3136, max_pixels=50176, max_frames=8)
WORDS = "red green blue small large circle square shape picture video frame left right top bottom".split()


def jpeg(height: int, width: int, rng: random.Random) -> bytes:
    image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(6):  # a few shapes, so the JPEG is not trivially flat
        x, y = rng.randrange(width), rng.randrange(height)
        image.paste(
            tuple(rng.randrange(256) for _ in range(3)), (x, y, min(width, x + 40), min(height, y + 40))
        )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def write_shards(out: Path, num_samples: int, seed: int) -> DatasetConfig:
    """Mixed shards under `out` (text 40%, photo 40%, video 20%) with meta sizes measured by decoding."""
    config = DatasetConfig(
        name="mixed", shards=str(out), image_budget=IMAGE_BUDGET, video_budget=VIDEO_BUDGET
    )
    decoder = SampleDecoder(config, "plain", TokenizerInfo.from_tokenizer(load_tokenizer(None)), 100_000)
    rng = random.Random(seed)
    with ShardWriter(str(out), "mixed", max_samples=20) as writer:
        for index in range(num_samples):
            kind = rng.choices(("text", "photo", "video"), (0.4, 0.4, 0.2))[0]
            media: dict[str, bytes] = {}
            sizes, user = [], []
            if kind == "photo":
                height, width = rng.randint(200, 560), rng.randint(200, 560)
                media["0.jpg"] = jpeg(height, width, rng)
                sizes.append([width, height])
                user.append({"type": "image", "file": "0.jpg"})
            elif kind == "video":
                count = 2 * rng.randint(2, 4)
                for frame in range(count):
                    media[f"f{frame}.jpg"] = jpeg(224, 224, rng)
                user.append(
                    {
                        "type": "video",
                        "frames": [f"f{i}.jpg" for i in range(count)],
                        "timestamps": [i * 0.5 for i in range(count)],
                    }
                )
            length = rng.randint(150, 700) if kind == "text" else rng.randint(5, 40)
            user.append({"type": "text", "text": " ".join(rng.choice(WORDS) for _ in range(length))})
            answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30)))
            messages = [
                {"role": "user", "content": user},
                {"role": "assistant", "content": [{"type": "text", "text": answer}]},
            ]
            record = {"task": "chat", "messages": messages, "meta": {"source": kind, "image_sizes": sizes}}
            decoded = decoder({"__key__": "k", "json": json.dumps(record).encode(), **media})
            record["meta"]["num_tokens"] = len(decoded.input_ids)
            record["meta"]["num_patches"] = decoded.num_patches
            writer.write(f"mixed{index:05d}", record, media)
    return config


def data_config_dir(folder: Path, shards: Path) -> Path:
    """A Hydra search path holding data/rank_wait.yaml: the mixed shards under their budgets."""
    video = VIDEO_BUDGET
    text = f"""train:
  - name: mixed
    shards: {shards}
    image_budget: {{min_pixels: {IMAGE_BUDGET.min_pixels}, max_pixels: {IMAGE_BUDGET.max_pixels}}}
    video_budget: {{total_pixels: {video.total_pixels}, min_pixels: {video.min_pixels}, max_pixels: {video.max_pixels}, max_frames: {video.max_frames}}}
validation: []
seq_len: 1024
max_patches: 4096
micro_batch_size: 1
pack_window: 64
shuffle_buffer: 16
num_workers: 0
seed: 0
"""
    (folder / "conf" / "data").mkdir(parents=True, exist_ok=True)
    (folder / "conf" / "data" / "rank_wait.yaml").write_text(text)
    return folder / "conf"


def train(run_dir: Path, conf_dir: Path, steps: int, lookahead: int) -> list[dict]:
    command = [
        str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", "2", "--master_port", str(free_port()),
        "launch/train.py", "+stage=full_pretrain", "model=tiny", "logger=none", "data=rank_wait",
        f"hydra.searchpath=[file://{conf_dir}]",
        f"train.run_dir={run_dir}", f"train.max_steps={steps}", "train.checkpoint.save_at_end=false",
        f"data.balance_lookahead={lookahead}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",  # one torch thread per rank: CPU time is then exactly the work done
        "DS_ACCELERATOR": "cpu",
    }
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"training failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def summarise(records: list[dict]) -> dict:
    measured = [r for r in records if r["step"] > 2]
    return {
        "rank_wait_share": statistics.fmean(r["rank_wait_share"] for r in measured),
        "rank_work_balance": statistics.fmean(r["rank_work_balance"] for r in measured),
        "step_seconds": statistics.fmean(r["step_seconds"] for r in measured),
        "packing_efficiency": statistics.fmean(r["packing_efficiency"] for r in measured),
        "steps": len(measured),
        "per_step_wait_share": [r["rank_wait_share"] for r in measured],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--lookahead", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_results/rank_wait.json"))
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as folder:
        shards = Path(folder) / "shards"
        write_shards(shards, args.samples, args.seed)
        conf_dir = data_config_dir(Path(folder), shards)
        for repeat in range(args.repeats):
            for name, lookahead in (("before", 0), ("after", args.lookahead)):
                run_dir = Path(folder) / f"{name}{repeat}"
                runs[name].append(summarise(train(run_dir, conf_dir, args.steps, lookahead)))
                row = runs[name][-1]
                print(
                    f"{name} (lookahead {lookahead}): rank_wait_share {row['rank_wait_share']:.1%}, "
                    f"work balance {row['rank_work_balance']:.1%}, "
                    f"step {row['step_seconds']:.3f} s, packing {row['packing_efficiency']:.2%}",
                    flush=True,
                )
    report = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "lookahead": args.lookahead,
        "runs": runs,
    }
    for name in runs:
        report[name] = {
            key: statistics.fmean(run[key] for run in runs[name])
            for key in ("rank_wait_share", "rank_work_balance", "step_seconds", "packing_efficiency")
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    before, after = report["before"], report["after"]
    print(
        f"rank_wait_share {before['rank_wait_share']:.1%} -> {after['rank_wait_share']:.1%}; "
        f"work balance {before['rank_work_balance']:.1%} -> {after['rank_work_balance']:.1%}; "
        f"step time {before['step_seconds']:.3f} -> {after['step_seconds']:.3f} s "
        f"({before['step_seconds'] / after['step_seconds']:.2f}x)"
    )
    return report


if __name__ == "__main__":
    main()
