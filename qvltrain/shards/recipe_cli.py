"""Command-line options every converter shares: output, shard size, workers, budgets, template.

Budgets have no defaults here on purpose (docs/vision.md: sources disagree), so every shard
folder's num_tokens is counted under budgets its author typed; the recipe.json records them.
"""

from __future__ import annotations

import argparse
import os

from qvltrain.shards.recipe_tools import (
    Converter,
    ShardOptions,
    SourceRecord,
    WriteSummary,
    write_recipe_shards,
)
from qvltrain.shards.token_count import TokenSettings
from qvltrain.text.config import TEMPLATES
from qvltrain.vision.budgets import ImageBudget, VideoBudget

BYTE_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_bytes(text: str) -> int:
    """'500M', '2G', '65536' -> bytes."""
    suffix = text[-1:].lower()
    try:
        return int(float(text[:-1]) * BYTE_SUFFIXES[suffix]) if suffix in BYTE_SUFFIXES else int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: expected bytes such as 65536, 500M or 2G") from error


def parse_pixel_range(text: str) -> tuple[int, int]:
    """'3136:1003520' -> (min_pixels, max_pixels)."""
    try:
        low, high = (int(part) for part in text.split(":"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected MIN_PIXELS:MAX_PIXELS, e.g. 3136:1003520"
        ) from error
    return low, high


def add_output_arguments(parser: argparse.ArgumentParser, default_prefix: str = "train") -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--out", required=True, help="output folder for <prefix>-NNNNNN.tar and its index")
    group.add_argument(
        "--prefix", default=default_prefix, help="shard and key prefix, e.g. train or validation"
    )
    group.add_argument("--samples-per-shard", type=int, default=1000, help="most samples per shard")
    group.add_argument("--shard-bytes", type=parse_bytes, default="1G", help="most bytes per shard (K/M/G)")
    group.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="converter processes")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_token_arguments(parser: argparse.ArgumentParser, video: bool = False, images: bool = True) -> None:
    group = parser.add_argument_group("token counting (meta.num_tokens)")
    group.add_argument(
        "--image-budget",
        type=parse_pixel_range,
        required=images,
        default=None if images else (784, 784),
        metavar="MIN:MAX",
        help="resized pixel range of images, as in the training dataset config (e.g. 3136:1003520)",
    )
    if video:
        group.add_argument(
            "--video-total-pixels", type=int, required=True, help="pixels shared by a video's frames"
        )
        group.add_argument("--video-frame-budget", type=parse_pixel_range, default=(128 * 784, 768 * 784),
                           metavar="MIN:MAX", help="resized pixel range of one frame")  # fmt: skip
        group.add_argument("--video-fps", type=float, default=2.0, help="frames sampled per second")
        group.add_argument("--video-frames", type=parse_pixel_range, default=(4, 768), metavar="MIN:MAX",
                           help="fewest and most frames sampled per video (even)")  # fmt: skip
    group.add_argument("--template", choices=TEMPLATES, default="chatml", help="template of meta.num_tokens")
    group.add_argument(
        "--tokenizer", default=None, help="local tokenizer folder (default: the bundled tiny one)"
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="re-encode images (and video frames) larger than this many pixels, shrunk to fit; "
        "otherwise source bytes are stored unchanged",
    )


def token_settings(args: argparse.Namespace) -> TokenSettings:
    video_budget = None
    if getattr(args, "video_total_pixels", None) is not None:
        video_budget = VideoBudget(
            total_pixels=args.video_total_pixels,
            min_pixels=args.video_frame_budget[0],
            max_pixels=args.video_frame_budget[1],
            fps=args.video_fps,
            min_frames=args.video_frames[0],
            max_frames=args.video_frames[1],
        )
    min_pixels, max_pixels = args.image_budget
    return TokenSettings(
        image_budget=ImageBudget(min_pixels=min_pixels, max_pixels=max_pixels),
        video_budget=video_budget,
        template=args.template,
        tokenizer=args.tokenizer,
    )


def shard_options(args: argparse.Namespace) -> ShardOptions:
    return ShardOptions(
        out_dir=args.out,
        prefix=args.prefix,
        samples_per_shard=args.samples_per_shard,
        shard_bytes=args.shard_bytes,
        num_workers=args.workers,
        progress=not args.no_progress,
    )


def recorded_arguments(args: argparse.Namespace) -> dict:
    """Arguments worth recording in recipe.json (no output paths: they would make it machine-specific)."""
    skipped = {"out", "workers", "no_progress"}
    return {name: value for name, value in sorted(vars(args).items()) if name not in skipped}


def print_summary(summary: WriteSummary, options: ShardOptions, max_lines: int = 10) -> None:
    print(f"{options.out_dir}/{options.prefix}: {summary.describe()}")
    for line in summary.bad_records[:max_lines]:
        print(f"  skipped {line}")
    if len(summary.bad_records) > max_lines:
        print(f"  ... {len(summary.bad_records) - max_lines} more skipped records")


def run_recipe(
    args: argparse.Namespace,
    records: list[SourceRecord],
    converter: Converter,
    settings: TokenSettings | None = None,
) -> WriteSummary:
    """The common tail of every converter's main: write, validate and summarise the shards."""
    options = shard_options(args)
    summary = write_recipe_shards(
        records, converter, settings or token_settings(args), options, args.source, recorded_arguments(args)
    )
    print_summary(summary, options)
    return summary
