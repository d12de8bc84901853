"""A realistic stage-2/3 training mixture, as sample sizes (tokens, ViT patches), for packing benchmarks.

How it is made (seeded, no data needed): five sources, each drawing sizes the way its real
counterpart does under the budgets the official fine-tuning recipes use (images 256..1280 tokens,
documents up to 2048, videos at 2 fps with 4096 tokens in total), counted with the same token
accounting the loader uses (`qvltrain.vision.tokens`):

| source | share | what is drawn |
|---|---|---|
| captions | 30% | one photo (side 200..2000 px log-uniform, aspect 1:2..2:1), caption 5..150 tokens |
| multi-turn VQA | 25% | 1..3 photos, 1..6 ChatML turns of question 10..60 and answer 5..250 tokens |
| documents | 15% | one page scan (A4/letter at 100..300 dpi), transcription 100..1000 tokens |
| video | 10% | 4..240 s clip at 2 fps (at most 128 frames), 360p..1080p, question + answer 20..300 tokens |
| text | 20% | lognormal, median 400 tokens, 30..8192 |

Result at seq_len 8192: mean ~1.4k tokens per sample and ~80% of tokens visual (printed by the bench).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from qvltrain.vision.budgets import ImageBudget, VideoBudget
from qvltrain.vision.tokens import VISION_MARKER_TOKENS, image_grid, video_grid

PHOTO_BUDGET = ImageBudget.from_tokens(256, 1280)
DOCUMENT_BUDGET = ImageBudget.from_tokens(256, 2048)
VIDEO_BUDGET = VideoBudget(total_pixels=4096 * 784, min_pixels=32 * 784, max_pixels=768 * 784, max_frames=128)
CHATML_TURN_OVERHEAD = 5  # <|im_start|>role\n ... <|im_end|>\n
SYSTEM_TURN = 20
SHARES = (("caption", 0.30), ("vqa", 0.25), ("document", 0.15), ("video", 0.10), ("text", 0.20))


@dataclass(frozen=True)
class VisualItem:
    """One image or video of a sample, as the loader would hand it to the tower."""

    kind: str
    """"image" or "video"."""
    grid_thw: tuple[int, int, int]
    """(t, h, w) in patches before merging."""


@dataclass
class SampleSize:
    source: str
    num_tokens: int
    """LLM tokens: text + visual blocks (pads and the two markers of each block)."""
    num_patches: int
    num_visual_tokens: int
    """Visual-block tokens, markers included."""
    items: list[VisualItem] = field(default_factory=list)
    """Images and videos in token order (the training benchmark builds real inputs from them)."""


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _photo(rng: random.Random, budget: ImageBudget) -> tuple[int, int, int]:
    """grid_thw of one photo."""
    side = _log_uniform(rng, 200, 2000)
    aspect = _log_uniform(rng, 0.5, 2.0)
    height, width = max(28, int(side * math.sqrt(aspect))), max(28, int(side / math.sqrt(aspect)))
    return image_grid(height, width, budget)


def _sample(rng: random.Random, source: str) -> SampleSize:
    grids: list[tuple[int, int, int]] = []
    if source == "caption":
        grids.append(_photo(rng, PHOTO_BUDGET))
        text = int(_log_uniform(rng, 5, 150)) + 1
    elif source == "vqa":
        for _ in range(rng.randint(1, 3)):
            grids.append(_photo(rng, PHOTO_BUDGET))
        turns = rng.randint(1, 6)
        text = SYSTEM_TURN + sum(
            int(_log_uniform(rng, 10, 60)) + int(_log_uniform(rng, 5, 250)) + 2 * CHATML_TURN_OVERHEAD
            for _ in range(turns)
        )
    elif source == "document":
        dpi = rng.uniform(100, 300)
        width_in, height_in = rng.choice(((8.27, 11.69), (8.5, 11.0)))
        grids.append(image_grid(int(height_in * dpi), int(width_in * dpi), DOCUMENT_BUDGET))
        text = int(_log_uniform(rng, 100, 1000))
    elif source == "video":
        seconds = _log_uniform(rng, 4, 240)
        height = rng.choice((360, 480, 720, 1080))
        grids.append(video_grid(int(seconds * 30), 30.0, height, height * 16 // 9, VIDEO_BUDGET))
        text = SYSTEM_TURN + 2 * CHATML_TURN_OVERHEAD + int(_log_uniform(rng, 20, 300))
    else:
        text = int(min(8192, max(30, rng.lognormvariate(math.log(400), 1.0))))
    kind = "video" if source == "video" else "image"
    items = [VisualItem(kind, grid) for grid in grids]
    patches = sum(t * h * w for t, h, w in grids)
    visual_tokens = sum(t * h * w // 4 + VISION_MARKER_TOKENS for t, h, w in grids)
    return SampleSize(source, min(8192, visual_tokens + text), patches, visual_tokens, items)


def realistic_mixture(num_samples: int, seed: int = 0) -> list[SampleSize]:
    """`num_samples` sample sizes drawn from the mixture above."""
    rng = random.Random(seed)
    names, weights = zip(*SHARES, strict=True)
    return [_sample(rng, rng.choices(names, weights)[0]) for _ in range(num_samples)]
