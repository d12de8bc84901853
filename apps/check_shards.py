"""Check written shards against docs/shard-format.md: schema, media, sizes, index, token counts.

    python -m apps.check_shards data/digits/caption/train [--check-tokens] [--max-errors 20]

Every recipe runs the same check on what it writes (qvltrain.shards.check); run it on your own
shards before training. Media sizes are read from file headers only, so a pass is quick.
"""

from __future__ import annotations

import argparse
import sys

from qvltrain.data.shards import expand_shards
from qvltrain.shards.check import check_shards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "shards",
        help="folder of *.tar / *.tar.gz, brace pattern, glob, URL or JSON/JSONL file ('::' joins several)",
    )
    parser.add_argument(
        "--check-tokens",
        action="store_true",
        help="recompute meta.num_tokens with the settings in <prefix>.recipe.json beside the shards",
    )
    parser.add_argument(
        "--media-root",
        default=None,
        help="folder of a JSON/JSONL dataset's media (default: the file's folder)",
    )
    parser.add_argument("--max-errors", type=int, default=20, help="problems printed (all are counted)")
    args = parser.parse_args(argv)
    checker = None
    if args.check_tokens:
        from qvltrain.shards.token_count import TokenChecker

        checker = TokenChecker.from_recipe_files(expand_shards(args.shards))
    report = check_shards(args.shards, checker, max_errors=args.max_errors, media_root=args.media_root)
    for line in report.errors:
        print(line)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
