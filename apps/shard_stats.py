"""Statistics of shards, from their metadata alone (no pixel is decoded).

    python -m apps.shard_stats data/digits/grounding/train [--seq-len 8192] [--template chatml] [--json]

Samples per task, a token-length histogram, the visual share of tokens, media counts and sizes, and
the packing efficiency the packer would reach at --seq-len with --max-patches (qvltrain.shards.stats).
"""

from __future__ import annotations

import argparse
import json

from qvltrain.shards.stats import report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shards", help="folder, brace pattern, glob or '::'-joined list")
    parser.add_argument("--seq-len", type=int, default=8192)
    parser.add_argument("--max-patches", type=int, default=32768)
    parser.add_argument("--window", type=int, default=256, help="the packer's window (data.pack_window)")
    parser.add_argument("--template", default="chatml", choices=("chatml", "plain"))
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    result = report(args.shards, args.seq_len, args.max_patches, args.window, args.template)
    if args.json:
        print(json.dumps(result, indent=1))
        return result
    tokens, packing = result["tokens"], result["packing"]
    print(f"{result['num_samples']} samples in {args.shards}")
    print("tasks: " + ", ".join(f"{task} {count}" for task, count in sorted(result["tasks"].items())))
    print(
        f"tokens ({args.template}): total {tokens['total']}, mean {tokens['mean']:.1f}, max {tokens['max']}"
    )
    print(f"visual share of tokens: {result['visual_share']:.1%}")
    print(f"media: {result['media']['files']} files, mean {result['media']['mean_bytes'] / 1024:.1f} KiB; "
          f"{result['image_sizes']['count']} images of {result['image_sizes']['distinct']} distinct sizes")  # fmt: skip
    print("token-length histogram:")
    print("\n".join(result["histogram"]))
    print(
        f"packing at seq_len {packing['seq_len']} (max_patches {packing['max_patches']}, window "
        f"{packing['window']}): {packing['packs']} packs, efficiency {packing['efficiency']:.2%}, "
        f"{packing['too_long']} samples too long"
    )
    return result


if __name__ == "__main__":
    main()
