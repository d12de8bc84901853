"""Export a checkpoint (or a run's latest) to a Hugging Face folder.

python launch/export_hf.py runs/instruct exports/instruct
python launch/export_hf.py runs/instruct/checkpoints/step_001000 exports/instruct-1000
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="run directory (uses checkpoints/latest) or a checkpoint directory")
    parser.add_argument(
        "out_dir", help="folder to write (config.json, model.safetensors, tokenizer, processor)"
    )
    args = parser.parse_args(argv)

    from qvltrain.train.export import export_hf

    try:
        checkpoint = export_hf(args.source, args.out_dir)
    except ValueError as error:
        raise SystemExit(f"export error: {error}") from None
    print(f"[qvltrain] exported {checkpoint} -> {args.out_dir}")


if __name__ == "__main__":
    main()
