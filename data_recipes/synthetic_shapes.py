"""Synthetic shape captions: the demo's and the tests' first dataset, made on the spot.

    python -m data_recipes.synthetic_shapes --out data/synthetic [--train 2000 --validation 200]

Each sample is an image of one coloured shape on a noisy background, of random size and aspect
ratio (so dynamic resolution gives varying token counts), captioned "a red circle". Writes
`train/` and `validation/` shard folders; same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import io
import random

from PIL import Image, ImageDraw

from qvltrain.shards.writer import ShardWriter
from qvltrain.vision.budgets import ImageBudget
from qvltrain.vision.resize import smart_resize

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle")
RECIPE_BUDGET = ImageBudget(min_pixels=3136, max_pixels=50176)
"""Budget used for meta.num_tokens; must match the training config's image_budget."""


def draw_sample(rng: random.Random) -> tuple[Image.Image, str]:
    width, height = rng.randint(48, 200), rng.randint(48, 200)
    background = tuple(rng.randint(90, 160) for _ in range(3))
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    for _ in range(20):  # a little clutter so the task is not a colour histogram of the whole image
        x, y = rng.randrange(width), rng.randrange(height)
        shade = tuple(min(255, c + rng.randint(-30, 30)) for c in background)
        draw.point((x, y), fill=shade)
    color_name, shape = rng.choice(sorted(COLORS)), rng.choice(SHAPES)
    side = rng.randint(min(width, height) // 2, min(width, height) - 4)
    left, top = rng.randint(0, width - side), rng.randint(0, height - side)
    box = (left, top, left + side, top + side)
    if shape == "circle":
        draw.ellipse(box, fill=COLORS[color_name])
    elif shape == "square":
        draw.rectangle(box, fill=COLORS[color_name])
    else:
        draw.polygon(
            [(left + side // 2, top), (left, top + side), (left + side, top + side)], fill=COLORS[color_name]
        )
    return image, f"a {color_name} {shape}"


def sample_json(caption: str, width: int, height: int, num_text_tokens: int) -> dict:
    resized_h, resized_w = smart_resize(
        height, width, min_pixels=RECIPE_BUDGET.min_pixels, max_pixels=RECIPE_BUDGET.max_pixels
    )
    num_visual_tokens = resized_h * resized_w // (28 * 28) + 2  # + vision_start / vision_end
    return {
        "task": "caption",
        "messages": [
            {"role": "user", "content": [{"type": "image", "file": "0.jpg"}]},
            {"role": "assistant", "content": [{"type": "text", "text": caption}]},
        ],
        "meta": {
            "source": "synthetic_shapes",
            "image_sizes": [[width, height]],
            "num_tokens": num_visual_tokens + num_text_tokens,
        },
    }


def write_split(
    out_dir: str, split: str, num_samples: int, seed: int, samples_per_shard: int
) -> dict[str, int]:
    from qvltrain.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(None)
    rng = random.Random(f"{seed}-{split}")
    with ShardWriter(f"{out_dir}/{split}", prefix=split, max_samples=samples_per_shard) as writer:
        for index in range(num_samples):
            image, caption = draw_sample(rng)
            encoded = io.BytesIO()
            image.save(encoded, format="JPEG", quality=92)
            num_text_tokens = len(tokenizer(caption)["input_ids"]) + 1  # + end of text
            writer.write(
                f"{split}{index:07d}",
                sample_json(caption, *image.size, num_text_tokens),
                {"0.jpg": encoded.getvalue()},
            )
        return writer.counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (gets train/ and validation/)")
    parser.add_argument("--train", type=int, default=2000, help="training samples")
    parser.add_argument("--validation", type=int, default=200, help="validation samples")
    parser.add_argument("--samples-per-shard", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for split, count in (("train", args.train), ("validation", args.validation)):
        counts = write_split(args.out, split, count, args.seed, args.samples_per_shard)
        print(f"{split}: {sum(counts.values())} samples in {len(counts)} shards under {args.out}/{split}")


if __name__ == "__main__":
    main()
