"""smart_resize against transformers' own, the paper's token counts, and token accounting vs real rows."""

from __future__ import annotations

import numpy as np
import pytest
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference_smart_resize

from qvltrain.vision import (
    ImageBudget,
    VideoBudget,
    VisualInputError,
    image_grid,
    image_num_tokens,
    image_to_patches,
    smart_resize,
    video_num_tokens,
)
from qvltrain.vision.tokens import VISION_MARKER_TOKENS

RELEASE = ImageBudget(min_pixels=3136, max_pixels=12_845_056)


@pytest.mark.parametrize(
    ("height", "width", "tokens"),
    [(224, 224, 64), (28, 224, 8), (480, 640, 391)],
)
def test_paper_token_counts(height: int, width: int, tokens: int) -> None:
    assert image_num_tokens(height, width, RELEASE) == tokens
    assert image_num_tokens(height, width, RELEASE) + VISION_MARKER_TOKENS == tokens + 2


def test_480x640_resizes_to_476x644() -> None:
    assert smart_resize(480, 640, min_pixels=RELEASE.min_pixels, max_pixels=RELEASE.max_pixels) == (476, 644)


def test_smart_resize_equals_transformers_on_many_sizes() -> None:
    rng = np.random.default_rng(0)
    budgets = [(3136, 1_003_520), (784, 784), (200_704, 1_003_520), (3136, 12_845_056), (100_352, 602_112)]
    sizes = [(int(h), int(w)) for h, w in np.exp(rng.uniform(0, np.log(5000), (4000, 2)))]
    sizes += [(h, w) for h in range(1, 120) for w in (h, 2 * h, 3 * h + 1)]  # exact halves, tiny sides
    checked = 0
    for height, width in sizes:
        if max(height, width) / min(height, width) > 200:
            continue
        for min_pixels, max_pixels in budgets:
            ours = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
            assert ours == reference_smart_resize(height, width, 28, min_pixels, max_pixels), (height, width)
            checked += 1
    assert checked > 10_000


def test_bankers_rounding_at_exact_halves() -> None:
    # 70 / 28 = 2.5 rounds to 2 (not 3); 42 / 28 = 1.5 rounds to 2.
    assert smart_resize(70, 70, min_pixels=784, max_pixels=10**7) == (56, 56)
    assert smart_resize(42, 42, min_pixels=784, max_pixels=10**7) == (56, 56)


def test_tiny_images_are_upscaled_like_transformers() -> None:
    assert smart_resize(1, 1, min_pixels=3136, max_pixels=1_003_520) == (56, 56)
    assert smart_resize(13, 13, min_pixels=3136, max_pixels=1_003_520) == (56, 56)


def test_aspect_ratio_over_200_names_the_sample() -> None:
    assert smart_resize(1, 200, min_pixels=784, max_pixels=10**7)  # exactly 200 is allowed
    with pytest.raises(VisualInputError, match="shard-7/key42") as caught:
        smart_resize(1, 201, min_pixels=784, max_pixels=10**7, name="shard-7/key42")
    assert caught.value.reason == "aspect_ratio"


def test_image_tokens_match_the_rows_actually_made() -> None:
    from PIL import Image

    budget = ImageBudget.from_tokens(4, 300)
    for height, width in [(33, 500), (480, 640), (1000, 17), (5, 5), (777, 1333)]:
        patches = image_to_patches(Image.new("RGB", (width, height)), budget)
        assert patches.grid_thw == image_grid(height, width, budget)
        assert patches.num_tokens == image_num_tokens(height, width, budget)
        assert patches.num_patches == 4 * image_num_tokens(height, width, budget)


def test_video_tokens_use_the_shared_total_budget() -> None:
    budget = VideoBudget(total_pixels=24576 * 784)
    # 10 s at 30 fps -> 20 frames; the per-frame cap stays 768*784 (the total allows more)
    tokens = video_num_tokens(300, 30.0, 1080, 1920, budget)
    height, width = smart_resize(1080, 1920, min_pixels=budget.min_pixels, max_pixels=768 * 784)
    assert tokens == 10 * (height // 14) * (width // 14) // 4
    # 600 s -> 768 frames (max_frames); the even share (64 tokens a frame) is below the floor of
    # 1.05 * min_pixels, so the floor wins and the video costs more than total_pixels (as upstream).
    assert budget.frame_max_pixels(768) == int(budget.min_pixels * 1.05)
    small_height, small_width = smart_resize(1080, 1920, min_pixels=budget.min_pixels, max_pixels=105_369)
    long_tokens = video_num_tokens(600 * 30, 30.0, 1080, 1920, budget)
    assert long_tokens == 384 * (small_height // 28) * (small_width // 28)
