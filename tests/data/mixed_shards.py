"""Small mixed shards made by code: text-only, image, multi-image, MP4 video and pre-extracted frames.

meta.num_tokens / num_patches are measured by decoding each sample, as a recipe would record them.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from PIL import Image

from qvltrain.data.config import DatasetConfig
from qvltrain.data.decode import SampleDecoder
from qvltrain.shards.writer import ShardWriter
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.vision.budgets import ImageBudget, VideoBudget
from tests.vision.media import smooth_pixels, write_video

IMAGE_BUDGET = ImageBudget(min_pixels=3136, max_pixels=12544)
VIDEO_BUDGET = VideoBudget(total_pixels=3136 * 8, min_pixels=3136, max_pixels=3136 * 4, max_frames=8)
KINDS = ("text", "image", "multi_image", "video", "frames")
WORDS = "red green blue small large circle square shape picture video frame left right top bottom".split()


def jpeg(height: int, width: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(smooth_pixels(height, width, seed)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def make_sample(kind: str, rng: random.Random, seed: int) -> tuple[list, dict[str, bytes], list]:
    """(messages, media by file name, image sizes)."""
    media: dict[str, bytes] = {}
    sizes: list = []
    user: list = []
    if kind in ("image", "multi_image"):
        for index in range(1 if kind == "image" else 2):
            height, width = rng.randint(40, 120), rng.randint(40, 120)
            media[f"{index}.jpg"] = jpeg(height, width, seed * 7 + index)
            sizes.append([width, height])
            user.append({"type": "image", "file": f"{index}.jpg"})
    elif kind == "video":
        media["0.mp4"] = write_video(rng.randint(6, 12), fps=4, size=(56, 56), seed=seed)
        user.append({"type": "video", "file": "0.mp4"})
    elif kind == "frames":
        count = rng.randint(4, 6)
        for index in range(count):
            media[f"f{index}.jpg"] = jpeg(56, 84, seed * 11 + index)
        user.append(
            {
                "type": "video",
                "frames": [f"f{i}.jpg" for i in range(count)],
                "timestamps": [i * 0.5 for i in range(count)],
            }
        )
    user.append({"type": "text", "text": words(rng, 2, 8) + "? "})
    messages = [
        {"role": "user", "content": user},
        {"role": "assistant", "content": [{"type": "text", "text": words(rng, 1, 12)}]},
    ]
    return messages, media, sizes


def dataset(name: str, shards: Path | str, weight: float = 1.0) -> DatasetConfig:
    return DatasetConfig(
        name=name, shards=str(shards), image_budget=IMAGE_BUDGET, video_budget=VIDEO_BUDGET, weight=weight
    )


def write_mixed_shards(
    out: Path, num_samples: int, samples_per_shard: int, seed: int = 0, kinds=KINDS, prefix: str = "mixed"
) -> Path:
    """Shards under `out` with samples cycling through `kinds`; returns `out`."""
    info = TokenizerInfo.from_tokenizer(load_tokenizer(None))
    decoder = SampleDecoder(dataset("mixed", out), "plain", info, max_length=100_000)
    rng = random.Random(seed)
    with ShardWriter(str(out), prefix, max_samples=samples_per_shard) as writer:
        for index in range(num_samples):
            kind = kinds[index % len(kinds)]
            messages, media, sizes = make_sample(kind, rng, seed * 100_000 + index)
            record = {"task": "chat", "messages": messages, "meta": {"source": kind, "image_sizes": sizes}}
            decoded = decoder({"__key__": "k", "json": json.dumps(record).encode(), **media})
            record["meta"]["num_tokens"] = len(decoded.input_ids)
            record["meta"]["num_patches"] = decoded.num_patches
            writer.write(f"{prefix}{index:05d}", record, media)
    return out
