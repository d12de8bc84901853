"""scikit-learn's handwritten digits (shipped in qvltrain/assets/digits) as four small tasks.

    python -m data_recipes.digits --out data/digits [--scale 1.0] [--workers 2]

Writes data/digits/<task>/{train,validation}/ for task in caption ("a handwritten 7"), grounding
(1-3 digits on a 112x112 canvas; the answer is the box of the asked digit), chat (two turns about a
canvas) and video (a digit moving left/right/up/down, encoded with PyAV, stored as JPEG frames with
timestamps). Train and validation use disjoint source digits. Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import os
import random

from qvltrain.data.digits import split_indices
from qvltrain.data.digits_tasks import VIDEO_BUDGET, convert_spec, draw_spec
from qvltrain.data.recipe_tools import ShardOptions, SourceRecord, write_recipe_shards
from qvltrain.data.token_count import TokenSettings
from qvltrain.vision.budgets import ImageBudget

COUNTS = {"caption": (3000, 200), "grounding": (6000, 200), "chat": (2000, 100), "video": (800, 100)}
"""(train, validation) samples per task at --scale 1."""
IMAGE_BUDGET = ImageBudget(min_pixels=3136, max_pixels=50176)
"""The budget meta.num_tokens is counted with; conf/data/digits_*.yaml use the same."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every sample count")
    parser.add_argument("--tasks", default=",".join(COUNTS), help="comma-separated subset of tasks")
    parser.add_argument(
        "--validation-fraction", type=float, default=0.2, help="share of source digits held out"
    )
    parser.add_argument("--samples-per-shard", type=int, default=250)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    splits = split_indices(args.validation_fraction, args.seed)
    for task in args.tasks.split(","):
        if task not in COUNTS:
            parser.error(f"--tasks: unknown task {task!r}; expected some of {', '.join(COUNTS)}")
        for split, count in zip(("train", "validation"), COUNTS[task], strict=True):
            rng = random.Random(f"{args.seed}-{task}-{split}")
            num_samples = max(2, round(count * args.scale))
            records = [
                SourceRecord(f"{task}/{split}[{number}]", draw_spec(task, rng, splits[split]))
                for number in range(num_samples)
            ]
            options = ShardOptions(
                out_dir=os.path.join(args.out, task, split),
                prefix=split,
                samples_per_shard=max(1, min(args.samples_per_shard, num_samples // 2)),
                num_workers=args.workers,
                progress=not args.no_progress,
            )
            settings = TokenSettings(image_budget=IMAGE_BUDGET, video_budget=VIDEO_BUDGET, template="chatml")
            summary = write_recipe_shards(
                records, convert_spec, settings, options, f"digits-{task}", vars(args)
            )
            print(f"{task}/{split}: {summary.describe()}")


if __name__ == "__main__":
    main()
