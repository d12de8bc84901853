"""Which frames of a video are sampled (2 fps by default), as the facts page and qwen-vl-utils do it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from qvltrain.vision.budgets import VideoBudget
from qvltrain.vision.errors import VisualInputError
from qvltrain.vision.layout import TEMPORAL_PATCH_SIZE


def _floor_even(value: float) -> int:
    return math.floor(value / TEMPORAL_PATCH_SIZE) * TEMPORAL_PATCH_SIZE


def num_sampled_frames(
    total_frames: int, video_fps: float, budget: VideoBudget, name: str = "<video>"
) -> int:
    """total / video_fps * fps, clamped to [min_frames, min(max_frames, total)], floored to even."""
    if total_frames <= 0:
        raise VisualInputError("empty_video", name, "no frames")
    if total_frames < TEMPORAL_PATCH_SIZE:
        raise VisualInputError(
            "short_video", name, f"{total_frames} frame(s), a tube needs {TEMPORAL_PATCH_SIZE}"
        )
    if not video_fps > 0:
        raise VisualInputError("corrupt_video", name, f"frame rate {video_fps}")
    wanted = total_frames / video_fps * budget.fps
    max_frames = _floor_even(min(budget.max_frames, total_frames))
    clamped = min(max(wanted, budget.min_frames), max_frames, total_frames)
    return _floor_even(clamped)


def sample_frame_indices(total_frames: int, num_frames: int) -> list[int]:
    """Evenly spread indices from the first to the last frame.

    float32 torch.linspace then round-half-even, as qwen-vl-utils computes them, so long videos pick
    the same frames (float64 would differ at exact halves).
    """
    return torch.linspace(0, total_frames - 1, num_frames).round().long().tolist()


def fps_from_timestamps(timestamps_s: Sequence[float], name: str = "<video>") -> float:
    """Frame rate of pre-extracted frames, from their first and last timestamps."""
    if len(timestamps_s) < TEMPORAL_PATCH_SIZE:
        raise VisualInputError("short_video", name, f"{len(timestamps_s)} frame(s)")
    span = timestamps_s[-1] - timestamps_s[0]
    if not span > 0 or any(b < a for a, b in zip(timestamps_s, timestamps_s[1:], strict=False)):
        raise VisualInputError("corrupt_video", name, "frame timestamps must increase")
    return (len(timestamps_s) - 1) / span
