"""Reading boxes back out of text, per box format: the inverse side of `grounding.BOX_FORMATTERS`.

Held-out grounding (apps/heldout_eval.py) parses the generated answer and the reference with the
parser of the model family's `box_format` and compares them by IoU in that format's coordinates.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Box = tuple[float, float, float, float]

QWEN2_VL_BOX = re.compile(r"\((\d+),(\d+)\),\((\d+),(\d+)\)")


def parse_qwen2_vl_box(text: str) -> Box | None:
    """The first `(x1,y1),(x2,y2)` box of a text (Qwen2-VL's [0, 1000) integers), or None."""
    found = QWEN2_VL_BOX.search(text)
    return tuple(int(value) for value in found.groups()) if found else None


NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
QWEN2_5_VL_BOX = re.compile(r'"bbox_2d"\s*:\s*\[' + ",".join([NUMBER] * 4) + r"\]")


def parse_qwen2_5_vl_box(text: str) -> Box | None:
    """The first `"bbox_2d": [x1, y1, x2, y2]` of a text (Qwen2.5-VL's pixels of the resized image), or None."""
    found = QWEN2_5_VL_BOX.search(text)
    return tuple(float(value) for value in found.groups()) if found else None


BOX_PARSERS: dict[str, Callable[[str], Box | None]] = {
    "qwen2_vl": parse_qwen2_vl_box,
    "qwen2_5_vl": parse_qwen2_5_vl_box,
}
"""box_format -> the parser of its box text."""
