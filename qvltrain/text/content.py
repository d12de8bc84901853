"""Content items of the shard schema -> builder calls, shared by the chatml and plain renderers.

Items: {"type": "text", "text"}, {"type": "ref", "text"}, {"type": "box", "bbox", "image"},
{"type": "image", ...}, {"type": "video", ...}. Visual items take their grid from `visual_grids` in order
of appearance; a box's "image" indexes the sample's IMAGES (0-based), whose original sizes are in
`image_sizes` as (width, height).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from qvltrain.text.builder import MM_IMAGE, MM_VIDEO, TokenSequenceBuilder
from qvltrain.text.config import RenderConfig
from qvltrain.text.errors import SkipSample
from qvltrain.text.grounding import BOX_FORMATTERS
from qvltrain.text.tokenizer import TokenizerInfo

VISUAL_TYPES = ("image", "video")
PATCH_SIZE = 14
"""Pixels per grid step: a grid (t, h, w) is an image resized to (14 w) x (14 h)."""
TEXTUAL_TYPES = ("text", "ref", "box")


@dataclass
class ContentRenderer:
    """Per-sample state while rendering items: visual counters, the next grid, box counters."""

    builder: TokenSequenceBuilder
    info: TokenizerInfo
    config: RenderConfig
    visual_grids: Sequence[tuple[int, int, int]]
    image_sizes: Sequence[tuple[int, int]]
    visual_kinds: list[str] = field(default_factory=list)
    num_images: int = 0
    num_videos: int = 0
    num_clipped_boxes: int = 0

    def add_item(self, item: dict, text_trained: bool, special_trained: bool) -> None:
        """Render one item; `special_trained` covers the ref/box delimiters (never visual blocks)."""
        item_type = item.get("type")
        special = self.info.special
        if item_type == "text":
            self.builder.add_text(item["text"], text_trained)
        elif item_type == "ref":
            self.builder.add_special(special.object_ref_start, special_trained)
            self.builder.add_text(item["text"], text_trained)
            self.builder.add_special(special.object_ref_end, special_trained)
        elif item_type == "box":
            self.builder.add_special(special.box_start, special_trained)
            self.builder.add_text(self.box_text(item), text_trained)
            self.builder.add_special(special.box_end, special_trained)
        elif item_type in VISUAL_TYPES:
            self.add_visual(item_type)
        else:
            raise SkipSample("unknown_content_type", f"content item type {item_type!r}")

    def box_text(self, item: dict) -> str:
        image_index = item.get("image", 0 if len(self.image_sizes) == 1 else None)
        if image_index is None or not 0 <= image_index < len(self.image_sizes):
            raise SkipSample(
                "box_image_unknown",
                f"box names image {image_index!r}; {len(self.image_sizes)} image sizes known",
            )
        width, height = self.image_sizes[image_index]
        box = BOX_FORMATTERS[self.config.box_format](
            item["bbox"], (int(width), int(height)), self.resized_image_size(image_index)
        )
        self.num_clipped_boxes += int(box.clipped)
        return box.text

    def resized_image_size(self, image_index: int) -> tuple[int, int] | None:
        """(width, height) the model sees of image `image_index`, once its block is rendered (else None)."""
        image_positions = [index for index, kind in enumerate(self.visual_kinds) if kind == "image"]
        if image_index >= len(image_positions):
            return None
        _, h, w = self.visual_grids[image_positions[image_index]]
        return (w * PATCH_SIZE, h * PATCH_SIZE)

    def add_visual(self, kind: str) -> None:
        visual_index = len(self.visual_kinds)
        if visual_index >= len(self.visual_grids):
            raise ValueError(
                f"visual item {visual_index} ({kind}) has no grid: {len(self.visual_grids)} visual_grids "
                "were given, one per image/video item in order of appearance is needed"
            )
        t, h, w = self.visual_grids[visual_index]
        merge = self.config.spatial_merge_size
        if h % merge or w % merge or min(t, h, w) < 1:
            raise ValueError(
                f"grid_thw {(t, h, w)} of visual item {visual_index} is not mergeable by {merge}"
            )
        self.visual_kinds.append(kind)
        if kind == "image":
            self.num_images += 1
            label, number, pad_id, mm_type = "Picture", self.num_images, self.info.special.image_pad, MM_IMAGE
        else:
            self.num_videos += 1
            label, number, pad_id, mm_type = "Video", self.num_videos, self.info.special.video_pad, MM_VIDEO
        if self.config.add_vision_ids:
            self.builder.add_text(f"{label} {number}: ", trained=False)
        self.builder.add_visual_block(pad_id, t * h * w // merge**2, mm_type)

    def check_all_grids_used(self) -> None:
        if len(self.visual_kinds) != len(self.visual_grids):
            raise ValueError(
                f"{len(self.visual_grids)} visual_grids given but the messages hold {len(self.visual_kinds)} "
                "image/video items"
            )


def content_items(message: dict) -> list[dict]:
    """A message's content as items; a plain string is one text item (as the chat template treats it)."""
    content = message.get("content", [])
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)
