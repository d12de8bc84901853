"""smart_resize: the resized size of an image or frame under a pixel budget (Naive Dynamic Resolution)."""

from __future__ import annotations

import math

from qvltrain.vision.errors import VisualInputError
from qvltrain.vision.layout import FACTOR, MAX_ASPECT_RATIO


def check_size(height: int, width: int, name: str) -> None:
    """Refuse sizes no grid fits, as a counted skip naming the sample."""
    if height <= 0 or width <= 0:
        raise VisualInputError("empty_image", name, f"size {height}x{width}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise VisualInputError(
            "aspect_ratio", name, f"{height}x{width} has aspect ratio over {MAX_ASPECT_RATIO}"
        )


def smart_resize(
    height: int,
    width: int,
    *,
    min_pixels: int,
    max_pixels: int,
    factor: int = FACTOR,
    name: str | None = None,
) -> tuple[int, int]:
    """(height, width) rounded to multiples of `factor` with area in [min_pixels, max_pixels].

    Same arithmetic as transformers (the oracle): Python's round() is banker's rounding, kept on
    purpose so exact halves (e.g. 70 px -> 2.5 -> 56) match it. Inputs under 14 px are upscaled
    through the min_pixels branch, as transformers does (qwen-vl-utils bumps them differently).
    """
    check_size(height, width, name or "<unnamed>")
    resized_height = round(height / factor) * factor
    resized_width = round(width / factor) * factor
    if resized_height * resized_width > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        resized_height = max(factor, math.floor(height / beta / factor) * factor)
        resized_width = max(factor, math.floor(width / beta / factor) * factor)
    elif resized_height * resized_width < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        resized_height = math.ceil(height * beta / factor) * factor
        resized_width = math.ceil(width * beta / factor) * factor
    return resized_height, resized_width
