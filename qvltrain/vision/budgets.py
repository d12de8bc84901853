"""Pixel and frame budgets: how many visual tokens an image or a video may cost.

Sources disagree on the defaults (release preprocessor 3136..12,845,056 px, transformers' class
1,003,520 px max, fine-tuning recipes 256..1280 tokens), so the image budget has no default at all
and every dataset states its own in YAML; docs/vision.md explains how to choose.
"""

from __future__ import annotations

from dataclasses import dataclass

from qvltrain.vision.layout import FACTOR, TEMPORAL_PATCH_SIZE

PIXELS_PER_TOKEN = FACTOR * FACTOR
"""One merged LLM token covers 28 x 28 resized pixels (784)."""


def _check_pixels(owner: str, min_pixels: int, max_pixels: int) -> None:
    if min_pixels < PIXELS_PER_TOKEN:
        # Below one token, smart_resize can round a side to 0 for small inputs.
        raise ValueError(f"{owner}.min_pixels={min_pixels}: must be >= {PIXELS_PER_TOKEN} (one 28x28 token)")
    if max_pixels < min_pixels:
        raise ValueError(f"{owner}.max_pixels={max_pixels}: must be >= min_pixels={min_pixels}")


@dataclass
class ImageBudget:
    """Resized pixel range of one image; the resized area decides its token count (area / 784)."""

    min_pixels: int
    """Smallest resized area in pixels; smaller images are upscaled (>= 784, one token)."""
    max_pixels: int
    """Largest resized area in pixels; larger images are downscaled (>= min_pixels)."""

    def __post_init__(self) -> None:
        _check_pixels("image_budget", self.min_pixels, self.max_pixels)

    @classmethod
    def from_tokens(cls, min_tokens: int, max_tokens: int) -> ImageBudget:
        """The budget of `min_tokens..max_tokens` merged LLM tokens per image."""
        return cls(min_pixels=min_tokens * PIXELS_PER_TOKEN, max_pixels=max_tokens * PIXELS_PER_TOKEN)

    def describe(self) -> str:
        return (
            f"image min_pixels={self.min_pixels} ({self.min_pixels / PIXELS_PER_TOKEN:g} tokens) "
            f"max_pixels={self.max_pixels} ({self.max_pixels / PIXELS_PER_TOKEN:g} tokens)"
        )


@dataclass(kw_only=True)
class VideoBudget:
    """Frame sampling and per-frame pixel range of one video (facts page defaults, but the total is explicit)."""

    total_pixels: int
    """Pixels shared by all sampled frames; caps each frame at total * 2 / frames (release 24576*784)."""
    min_pixels: int = 128 * PIXELS_PER_TOKEN
    """Smallest resized area of one frame in pixels (>= 784)."""
    max_pixels: int = 768 * PIXELS_PER_TOKEN
    """Largest resized area of one frame in pixels, before the total budget tightens it."""
    fps: float = 2.0
    """Frames sampled per second of video (> 0)."""
    min_frames: int = 4
    """Fewest frames sampled when the video has that many (even, >= 2)."""
    max_frames: int = 768
    """Most frames sampled (even, >= min_frames); bounds decode time and memory per video."""

    def __post_init__(self) -> None:
        _check_pixels("video_budget", self.min_pixels, self.max_pixels)
        if self.total_pixels < self.min_pixels:
            raise ValueError(
                f"video_budget.total_pixels={self.total_pixels}: must be >= min_pixels={self.min_pixels}"
            )
        if not self.fps > 0:
            raise ValueError(f"video_budget.fps={self.fps}: must be > 0")
        for field_name in ("min_frames", "max_frames"):
            value = getattr(self, field_name)
            if value < TEMPORAL_PATCH_SIZE or value % TEMPORAL_PATCH_SIZE:
                raise ValueError(
                    f"video_budget.{field_name}={value}: must be even and >= {TEMPORAL_PATCH_SIZE}"
                )
        if self.max_frames < self.min_frames:
            raise ValueError(
                f"video_budget.max_frames={self.max_frames}: must be >= min_frames={self.min_frames}"
            )

    def frame_max_pixels(self, num_frames: int) -> int:
        """Per-frame max area when `num_frames` frames share `total_pixels`.

        Integer arithmetic as transformers' video processor (`cap_pixels_per_frame`) does it;
        qwen-vl-utils divides in floats, which moves the cap by under one pixel.
        """
        share = self.total_pixels * TEMPORAL_PATCH_SIZE // num_frames
        return max(min(self.max_pixels, share), int(self.min_pixels * 1.05))

    def describe(self) -> str:
        return (
            f"video fps={self.fps:g} frames={self.min_frames}..{self.max_frames} "
            f"frame min_pixels={self.min_pixels} max_pixels={self.max_pixels} "
            f"total_pixels={self.total_pixels} ({self.total_pixels / PIXELS_PER_TOKEN:g} tokens)"
        )
