"""Rebuild the tiny tokenizer bundled in `qvltrain/assets/tiny_tokenizer/` (qvltrain.text.tiny_tokenizer).

python -m apps.build_tiny_tokenizer [--out DIR]
"""

from __future__ import annotations

import argparse

from tokenizers import Tokenizer

from qvltrain.text.tiny_tokenizer import DEFAULT_OUT_DIR, build_tiny_tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT_DIR), help="output directory (default: bundled asset)"
    )
    args = parser.parse_args(argv)
    out_path = build_tiny_tokenizer(args.out)
    vocab_size = Tokenizer.from_file(str(out_path / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    print(f"wrote tiny tokenizer ({vocab_size} tokens) to {out_path}")


if __name__ == "__main__":
    main()
