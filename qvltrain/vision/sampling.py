"""Which frames of a video are sampled, and at what rate, as qwen-vl-utils does it for Qwen2-VL and
Qwen2.5-VL.

The rate is dynamic: `budget.fps` (2 by default) is what a video gets while its frame count stays
within [min_frames, max_frames]; a longer video is sampled at max_frames, i.e. at a lower rate, and a
very short one at min_frames, i.e. faster. The rate actually sampled (`sampled_fps`) sets the seconds
one tube of two frames spans (`second_per_grid`), which Qwen2.5-VL's positions scale time by, so
frames sampled at any rate keep their real time (qvltrain/text/positions.py). Per-frame pixels shrink
with the frame count under `total_pixels` (budgets.py), so frames and pixels share one budget.
"""

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


def sampled_fps(num_frames: int, total_frames: int, video_fps: float) -> float:
    """The rate `num_frames` frames spread over a video of `total_frames` at `video_fps` amount to:
    num_frames / total_frames * video_fps (qwen-vl-utils' `sample_fps`, what its processor receives)."""
    return num_frames / total_frames * video_fps


def second_per_grid(num_frames: int, total_frames: int, video_fps: float) -> float:
    """Seconds one tube (TEMPORAL_PATCH_SIZE sampled frames) spans: 2 / sampled fps, as transformers'
    Qwen2.5-VL processor computes `second_per_grid_ts` from the fps it is given."""
    return TEMPORAL_PATCH_SIZE / sampled_fps(num_frames, total_frames, video_fps)


def fps_from_timestamps(timestamps_s: Sequence[float], name: str = "<video>") -> float:
    """Frame rate of pre-extracted frames, from their first and last timestamps."""
    if len(timestamps_s) < TEMPORAL_PATCH_SIZE:
        raise VisualInputError("short_video", name, f"{len(timestamps_s)} frame(s)")
    span = timestamps_s[-1] - timestamps_s[0]
    if not span > 0 or any(b < a for a, b in zip(timestamps_s, timestamps_s[1:], strict=False)):
        raise VisualInputError("corrupt_video", name, "frame timestamps must increase")
    return (len(timestamps_s) - 1) / span
