"""Token accounting from sizes alone (no pixels decoded): what the packer and shard recipes plan with.

Counts are merged LLM tokens (the pad tokens of one visual block); add 2 for <|vision_start|> and
<|vision_end|>. They equal what image_to_patches / video_to_patches produce for the same input.
"""

from __future__ import annotations

from qvltrain.vision.budgets import ImageBudget, VideoBudget
from qvltrain.vision.layout import MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE
from qvltrain.vision.resize import smart_resize
from qvltrain.vision.sampling import num_sampled_frames

VISION_MARKER_TOKENS = 2
"""<|vision_start|> and <|vision_end|> around every image or video."""


def image_grid(height: int, width: int, budget: ImageBudget, name: str | None = None) -> tuple[int, int, int]:
    """grid_thw (1, h, w) in patches of an image of height x width (after EXIF rotation)."""
    resized_height, resized_width = smart_resize(
        height, width, min_pixels=budget.min_pixels, max_pixels=budget.max_pixels, name=name
    )
    return 1, resized_height // PATCH_SIZE, resized_width // PATCH_SIZE


def video_grid(
    num_frames: int, video_fps: float, height: int, width: int, budget: VideoBudget, name: str | None = None
) -> tuple[int, int, int]:
    """grid_thw (t, h, w) of a video of num_frames frames at video_fps, frames height x width.

    For pre-extracted frames pass their count and fps_from_timestamps(timestamps).
    """
    label = name or "<video>"
    sampled = num_sampled_frames(num_frames, video_fps, budget, label)
    resized_height, resized_width = smart_resize(
        height, width, min_pixels=budget.min_pixels, max_pixels=budget.frame_max_pixels(sampled), name=label
    )
    return sampled // TEMPORAL_PATCH_SIZE, resized_height // PATCH_SIZE, resized_width // PATCH_SIZE


def grid_num_tokens(grid_thw: tuple[int, int, int]) -> int:
    """Merged LLM tokens of a grid: t * h * w / 4."""
    t, h, w = grid_thw
    return t * h * w // (MERGE_SIZE * MERGE_SIZE)


def image_num_tokens(height: int, width: int, budget: ImageBudget) -> int:
    """LLM tokens of one image, without the two vision marker tokens."""
    return grid_num_tokens(image_grid(height, width, budget))


def video_num_tokens(num_frames: int, video_fps: float, height: int, width: int, budget: VideoBudget) -> int:
    """LLM tokens of one video, without the two vision marker tokens."""
    return grid_num_tokens(video_grid(num_frames, video_fps, height, width, budget))
