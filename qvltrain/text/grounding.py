"""Box strings per model family: pixel boxes on the ORIGINAL image -> the text inside `<|box_start|>...`.

Shards store raw pixel boxes `[x1, y1, x2, y2]` (x right, y down, on the original image of size
`(width, height)`); each model family converts them at render time. Qwen2-VL writes coordinates
relative to the original image as integers in [0, 1000): `(x1,y1),(x2,y2)`. Qwen2.5-VL writes
absolute pixel coordinates of the RESIZED image (the one the model sees, sides multiples of 28) in
the JSON style of its instruct data: `{"bbox_2d": [x1, y1, x2, y2]}`. Example: a 640x480 image
resized to 644x476 (budget and rounding, qvltrain/vision/resize.py), box [100, 50, 300, 200]:

    qwen2_vl:    <|box_start|>(156,104),(468,416)<|box_end|>
    qwen2_5_vl:  <|box_start|>{"bbox_2d": [101, 50, 302, 198]}<|box_end|>
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qvltrain.text.errors import SkipSample

QWEN2_VL_COORDINATE_SCALE = 1000


@dataclass(frozen=True)
class BoxText:
    """The rendered coordinates of one box and whether it had to be clipped to the image."""

    text: str
    """What goes between `<|box_start|>` and `<|box_end|>`, e.g. "(176,106),(232,160)"."""
    clipped: bool
    """True when the pixel box reached outside the image and was clipped to it."""


def clip_pixel_box(bbox: Sequence[float], image_size: tuple[int, int]) -> tuple[tuple[float, ...], bool]:
    """Clip `[x1, y1, x2, y2]` to `[0, width] x [0, height]`; raise SkipSample for unusable boxes.

    A flipped box (x1 > x2 or y1 > y2) is a data error we do not guess at (it may be xywh); a box
    with no area inside the image is degenerate. Both are counted skips.
    """
    if len(bbox) != 4:
        raise SkipSample("degenerate_box", f"box {list(bbox)} must have 4 numbers [x1, y1, x2, y2]")
    width, height = image_size
    if width <= 0 or height <= 0:
        raise SkipSample("degenerate_box", f"image size {image_size} has no area")
    x1, y1, x2, y2 = (float(value) for value in bbox)
    if not all(math.isfinite(value) for value in (x1, y1, x2, y2)):
        raise SkipSample("degenerate_box", f"box {list(bbox)} has a non-finite coordinate")
    if x1 > x2 or y1 > y2:
        raise SkipSample("flipped_box", f"box {list(bbox)} has x1 > x2 or y1 > y2")
    clipped_box = (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )
    if clipped_box[0] >= clipped_box[2] or clipped_box[1] >= clipped_box[3]:
        raise SkipSample("degenerate_box", f"box {list(bbox)} has no area inside the {width}x{height} image")
    return clipped_box, clipped_box != (x1, y1, x2, y2)


def qwen2_vl_relative(value: float, size: int) -> int:
    """One pixel coordinate -> Qwen2-VL's integer in [0, 1000): floor(value / size * 1000), 1000 -> 999.

    The far edge (value == size) lands on 999 so the range stays half-open as the release uses it.
    """
    scaled = math.floor(value * QWEN2_VL_COORDINATE_SCALE / size)
    return min(max(scaled, 0), QWEN2_VL_COORDINATE_SCALE - 1)


def qwen2_vl_box_text(
    bbox: Sequence[float], image_size: tuple[int, int], resized_size: tuple[int, int] | None = None
) -> BoxText:
    """Qwen2-VL: `(x1,y1),(x2,y2)` relative to the original image, integers in [0, 1000)
    (`resized_size` is not used)."""
    (x1, y1, x2, y2), clipped = clip_pixel_box(bbox, image_size)
    width, height = image_size
    text = (
        f"({qwen2_vl_relative(x1, width)},{qwen2_vl_relative(y1, height)}),"
        f"({qwen2_vl_relative(x2, width)},{qwen2_vl_relative(y2, height)})"
    )
    return BoxText(text=text, clipped=clipped)


def qwen2_5_vl_box_text(
    bbox: Sequence[float], image_size: tuple[int, int], resized_size: tuple[int, int] | None = None
) -> BoxText:
    """Qwen2.5-VL: `{"bbox_2d": [x1, y1, x2, y2]}` in integer pixels of the resized image.

    Each coordinate is scaled by resized / original along its axis and rounded half to even, which
    keeps the far edge (value == original size) exactly on the resized size.
    """
    if resized_size is None:
        raise SkipSample("box_image_unknown", "qwen2_5_vl boxes need the resized size of their image")
    (x1, y1, x2, y2), clipped = clip_pixel_box(bbox, image_size)
    (width, height), (resized_width, resized_height) = image_size, resized_size
    scale_x, scale_y = resized_width / width, resized_height / height
    coordinates = [round(x1 * scale_x), round(y1 * scale_y), round(x2 * scale_x), round(y2 * scale_y)]
    return BoxText(text='{"bbox_2d": [' + ", ".join(map(str, coordinates)) + "]}", clipped=clipped)


BoxFormatter = Callable[[Sequence[float], tuple[int, int], "tuple[int, int] | None"], BoxText]
"""(pixel box on the original image, original (width, height), resized (width, height) or None)."""

# Model family -> box formatter (a family's `box_format`, qvltrain/model/family.py).
BOX_FORMATTERS: dict[str, BoxFormatter] = {"qwen2_vl": qwen2_vl_box_text, "qwen2_5_vl": qwen2_5_vl_box_text}
