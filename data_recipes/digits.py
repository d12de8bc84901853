"""Handwritten digits (scikit-learn's copy of UCI optdigits, shipped in data_recipes/assets) -> four tasks.

    python -m data_recipes.digits --out data/digits [--scale 1.0] [--tasks caption,grounding,chat,video]

Writes OUT/<task>/<split>/<split>-NNNNNN.tar (split: train, validation) for the tasks
  caption    the digit alone, 28..56 px (all resize to 56 x 56): "What is written?" -> "a handwritten 7"
  grounding  one digit anywhere on a 112 x 112 canvas: "Where is the 3?" -> its pixel box
  chat       two turns about a canvas of 1-3 distinct digits: how many, then read them left to right
  video      a digit moving left/right/up/down over 8 frames at 4 fps (MP4 via PyAV), stored as
             JPEG frames with timestamps: "Which way does the digit move?"
Train and validation draw from disjoint source images (20% of each digit class held out). The
budgets below are what meta.num_tokens assumes; train with the same ones. Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from data_recipes.digits_source import split_indices
from data_recipes.digits_tasks import IMAGE_BUDGET, VIDEO_BUDGET, convert_spec, draw_spec
from qvltrain.shards.recipe_cli import print_summary
from qvltrain.shards.recipe_tools import ShardOptions, SourceRecord, WriteSummary, write_recipe_shards
from qvltrain.shards.token_count import TokenSettings

TRAIN_SAMPLES = {"caption": 12000, "grounding": 6000, "chat": 2000, "video": 800}
"""Training samples per task at --scale 1; validation gets a tenth (at least 2)."""
VALIDATION_SHARE = 0.1
TEMPLATES = {"caption": "plain", "grounding": "chatml", "chat": "chatml", "video": "chatml"}
"""Template of meta.num_tokens per task (the stage that uses it); num_tokens_by_template has both."""


def split_counts(task: str, scale: float) -> dict[str, int]:
    train = max(2, round(TRAIN_SAMPLES[task] * scale))
    return {"train": train, "validation": max(2, round(train * VALIDATION_SHARE))}


def write_task(task: str, split: str, count: int, pool, args: argparse.Namespace) -> WriteSummary:
    # Specs are drawn here, in one process, so every random choice is fixed before any worker runs.
    rng = random.Random(f"{args.seed}-{task}-{split}")
    records = [SourceRecord(f"{task}/{split}[{index}]", draw_spec(task, rng, pool)) for index in range(count)]
    options = ShardOptions(
        out_dir=os.path.join(args.out, task, split), prefix=split,
        # At least two shards per split, so two ranks (the demo) each get one to read.
        samples_per_shard=max(1, min(args.samples_per_shard, count // 2)),
        num_workers=args.workers, progress=not args.no_progress,
    )  # fmt: skip
    settings = TokenSettings(IMAGE_BUDGET, VIDEO_BUDGET, template=TEMPLATES[task], tokenizer=args.tokenizer)
    arguments = {"task": task, "split": split, "count": count, "seed": args.seed, "scale": args.scale}
    summary = write_recipe_shards(records, convert_spec, settings, options, f"digits_{task}", arguments)
    print_summary(summary, options)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", required=True, help="output folder (gets one folder per task)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help=f"multiplies the sample counts {TRAIN_SAMPLES}"
    )
    parser.add_argument(
        "--tasks", default=",".join(TRAIN_SAMPLES), help="comma-separated subset of the tasks"
    )
    parser.add_argument("--validation-fraction", type=float, default=0.2, help="source images held out")
    parser.add_argument("--samples-per-shard", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="converter processes")
    parser.add_argument(
        "--tokenizer", default=None, help="local tokenizer folder (default: the bundled tiny one)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error("--scale must be > 0")
    tasks = [task for task in args.tasks.split(",") if task]
    unknown = sorted(set(tasks) - set(TRAIN_SAMPLES))
    if unknown:
        parser.error(f"--tasks: unknown {unknown}; choose from {tuple(TRAIN_SAMPLES)}")
    pools = split_indices(args.validation_fraction, args.seed)
    started = time.perf_counter()
    for task in tasks:
        for split, count in split_counts(task, args.scale).items():
            write_task(task, split, count, pools[split], args)
    print(f"digits: {len(tasks)} task(s) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
