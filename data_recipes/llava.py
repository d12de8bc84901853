"""LLaVA-style conversations + an image folder -> chat shards.

    python -m data_recipes.llava --json llava_instruct.json --images coco/train2017 \
        --out data/llava --image-budget 3136:1003520 [--max-pixels 4000000]

Input: a JSON array (or JSONL) of {"id", "image": "file.jpg" | ["a.jpg", "b.jpg"],
"conversations": [{"from": "human", "value": "<image>\\nWhat is shown?"}, {"from": "gpt", "value": "..."}]}.
Each `<image>` takes the next image, text kept verbatim around it; with no placeholder the images
open the first human turn. Records without an image become text-only samples.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from qvltrain.shards.recipe_cli import add_output_arguments, add_token_arguments, run_recipe
from qvltrain.shards.recipe_inputs import conversation_messages, read_json_records
from qvltrain.shards.recipe_media import read_file, store_image
from qvltrain.shards.recipe_tools import BadRecord, RecipeSample


@dataclass
class LlavaConverter:
    image_root: str
    max_pixels: int | None = None

    def __call__(self, record: dict) -> RecipeSample:
        if "video" in record:
            raise BadRecord("unsupported", "video records belong to data_recipes.video_qa")
        files = record.get("image", record.get("images", []))
        files = [files] if isinstance(files, str) else list(files)
        media, items, sizes = {}, [], []
        for index, file_name in enumerate(files):
            stored = store_image(
                read_file(os.path.join(self.image_root, file_name)), file_name, self.max_pixels
            )
            media[f"{index}.{stored.extension}"] = stored.data
            items.append({"type": "image", "file": f"{index}.{stored.extension}"})
            sizes.append([stored.width, stored.height])
        messages = conversation_messages(record.get("conversations"), "<image>", items)
        meta = {"image_sizes": sizes}
        if "id" in record:
            meta["id"] = str(record["id"])
        return RecipeSample({"task": "chat" if files else "text", "messages": messages, "meta": meta}, media)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--json", required=True, help="LLaVA-style .json array or .jsonl")
    parser.add_argument("--images", required=True, help="folder the records' image paths are relative to")
    parser.add_argument("--source", default="llava", help="meta.source of every sample")
    add_output_arguments(parser)
    add_token_arguments(parser)
    args = parser.parse_args(argv)
    run_recipe(args, read_json_records(args.json), LlavaConverter(args.images, args.max_pixels))


if __name__ == "__main__":
    main()
