"""RefCOCO-style grounding JSON + an image folder -> grounding shards (one sample per expression).

    python -m data_recipes.refcoco --json refcoco_train.json --images coco/train2014 \
        --out data/refcoco --image-budget 3136:1003520 [--box-format xywh] [--split train]

Input: a JSON array (or JSONL) of {"image" | "file_name": "x.jpg", "bbox": [x, y, w, h] (pixels of
the source image; --box-format xyxy for [x1, y1, x2, y2]), "sentences": ["the man on the left", ...]
(or [{"sent": ...}] as in the refs files), optional "split" and "ref_id"}. A sample asks
"Where is <ref>expression</ref>?" and answers <ref>expression</ref><box>; the box is stored in
pixels of the stored image (docs/shard-format.md), the renderer converts it per model family.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from qvltrain.shards.recipe_cli import add_output_arguments, add_token_arguments, run_recipe
from qvltrain.shards.recipe_inputs import read_json_records
from qvltrain.shards.recipe_media import read_file, store_image
from qvltrain.shards.recipe_tools import (
    BadRecord,
    RecipeSample,
    SourceRecord,
    UnparsableRecord,
)


def expression_text(sentence: object) -> str:
    text = sentence.get("sent", sentence.get("raw")) if isinstance(sentence, dict) else sentence
    if not isinstance(text, str) or not text.strip():
        raise BadRecord("empty_expression", f"referring expression {sentence!r}")
    return text.strip()


def expression_records(path: str, split: str | None) -> list[SourceRecord]:
    """One record per referring expression; records of other splits are left out (not bad)."""
    records = []
    for record in read_json_records(path):
        ref = record.payload
        if isinstance(ref, UnparsableRecord) or not isinstance(ref.get("sentences"), list):
            records.append(record)  # reported by the converter with its line
            continue
        if split is not None and ref.get("split") != split:
            continue
        for index in range(len(ref["sentences"])):
            records.append(
                SourceRecord(f"{record.where}.sentences[{index}]", {"ref": ref, "sentence": index})
            )
    return records


@dataclass
class GroundingConverter:
    image_root: str
    box_format: str = "xywh"
    max_pixels: int | None = None

    def __call__(self, payload: dict) -> RecipeSample:
        if "ref" not in payload:
            raise BadRecord("invalid_record", "a ref needs a 'sentences' list")
        ref = payload["ref"]
        expression = expression_text(ref["sentences"][payload["sentence"]])
        file_name = ref.get("image", ref.get("file_name"))
        if not isinstance(file_name, str):
            raise BadRecord("invalid_record", "a ref needs 'image' or 'file_name'")
        stored = store_image(read_file(os.path.join(self.image_root, file_name)), file_name, self.max_pixels)
        bbox = stored.pixel_box(ref.get("bbox"), self.box_format)
        image_file = f"0.{stored.extension}"
        sample = {
            "task": "grounding",
            "messages": [
                {"role": "user", "content": [
                    {"type": "image", "file": image_file},
                    {"type": "text", "text": "Where is "},
                    {"type": "ref", "text": expression},
                    {"type": "text", "text": "?"},
                ]},
                {"role": "assistant", "content": [
                    {"type": "ref", "text": expression},
                    {"type": "box", "bbox": bbox, "image": 0},
                ]},
            ],
            "meta": {"image_sizes": [[stored.width, stored.height]], "id": str(ref.get("ref_id", ref.get("id", "")))},
        }  # fmt: skip
        return RecipeSample(sample, {image_file: stored.data})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--json", required=True, help="grounding .json array or .jsonl")
    parser.add_argument("--images", required=True, help="folder the records' image paths are relative to")
    parser.add_argument("--box-format", choices=("xywh", "xyxy"), default="xywh", help="source box layout")
    parser.add_argument("--split", default=None, help="keep only records whose 'split' equals this")
    parser.add_argument("--source", default="refcoco", help="meta.source of every sample")
    add_output_arguments(parser)
    add_token_arguments(parser)
    args = parser.parse_args(argv)
    run_recipe(
        args,
        expression_records(args.json, args.split),
        GroundingConverter(args.images, args.box_format, args.max_pixels),
    )


if __name__ == "__main__":
    main()
