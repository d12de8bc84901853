"""COCO-captions-style JSON + an image folder -> caption shards (one sample per caption).

    python -m data_recipes.coco_captions --json annotations/captions_train2017.json \
        --images coco/train2017 --out data/coco --image-budget 3136:1003520 [--captions-per-image 1]

Input: {"images": [{"id": 1, "file_name": "a.jpg", ...}], "annotations": [{"id": 7, "image_id": 1,
"caption": "A dog on a sofa."}]}. A sample is [user: image (+ --prompt)] [assistant: caption];
under the plain template that is the image followed by its caption.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from dataclasses import dataclass

from qvltrain.shards.recipe_cli import add_output_arguments, add_token_arguments, run_recipe
from qvltrain.shards.recipe_media import read_file, store_image
from qvltrain.shards.recipe_tools import BadRecord, RecipeSample, SourceRecord


def caption_records(path: str, captions_per_image: int | None) -> list[SourceRecord]:
    """One record per kept caption, in annotation order; the image file is resolved here."""
    with open(path, encoding="utf-8") as source:
        data = json.load(source)
    files = {image["id"]: image["file_name"] for image in data.get("images", []) if "id" in image}
    kept: Counter = Counter()
    records = []
    for index, annotation in enumerate(data["annotations"]):
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        if captions_per_image is not None and kept[image_id] >= captions_per_image:
            continue
        kept[image_id] += 1
        payload = {"annotation": annotation, "file_name": files.get(image_id)}
        records.append(SourceRecord(f"{os.path.basename(path)}: annotations[{index}]", payload))
    return records


@dataclass
class CaptionConverter:
    image_root: str
    prompt: str | None = None
    max_pixels: int | None = None

    def __call__(self, payload: dict) -> RecipeSample:
        annotation, file_name = payload["annotation"], payload["file_name"]
        if file_name is None:
            raise BadRecord("unknown_image", f"image_id {annotation.get('image_id')!r} is not in 'images'")
        caption = annotation["caption"]
        if not isinstance(caption, str) or not caption.strip():
            raise BadRecord("empty_caption", f"caption {caption!r}")
        stored = store_image(read_file(os.path.join(self.image_root, file_name)), file_name, self.max_pixels)
        user = [{"type": "image", "file": f"0.{stored.extension}"}]
        if self.prompt:
            user.append({"type": "text", "text": self.prompt})
        sample = {
            "task": "caption",
            "messages": [
                {"role": "user", "content": user},
                {"role": "assistant", "content": [{"type": "text", "text": caption.strip()}]},
            ],
            "meta": {"image_sizes": [[stored.width, stored.height]], "id": str(annotation.get("id", ""))},
        }
        return RecipeSample(sample, {f"0.{stored.extension}": stored.data})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--json", required=True, help="COCO captions JSON (images + annotations)")
    parser.add_argument("--images", required=True, help="folder holding the images' file_name")
    parser.add_argument(
        "--captions-per-image", type=int, default=None, help="keep at most N captions per image"
    )
    parser.add_argument(
        "--prompt", default=None, help="user text after the image, e.g. 'Describe the image.'"
    )
    parser.add_argument("--source", default="coco_captions", help="meta.source of every sample")
    add_output_arguments(parser)
    add_token_arguments(parser)
    args = parser.parse_args(argv)
    run_recipe(
        args,
        caption_records(args.json, args.captions_per_image),
        CaptionConverter(args.images, args.prompt, args.max_pixels),
    )


if __name__ == "__main__":
    main()
