"""transformers' Qwen2VLProcessor as the oracle for input ids, mm_token_type_ids and grids.

Images go through the real `Qwen2VLImageProcessorPil` (so image grids come from transformers' own
smart_resize). Videos: transformers' video processor needs torchvision, which is not installed, so a
stub stands in for the PIXEL step only: it returns the `video_grid_thw` we chose. Everything that
decides ids stays transformers' code: `apply_chat_template`, `replace_video_token` (pad count from the
grid and merge size), `get_text_with_replacements`, the tokenizer call and `create_mm_token_type_ids`.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import torch
from PIL import Image
from transformers import Qwen2VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from qvltrain.text.chat_template import QWEN2_VL_CHAT_TEMPLATE

from .conversations import Conversation

MIN_PIXELS, MAX_PIXELS = 4 * 28 * 28, 64 * 28 * 28  # small budgets keep the tests fast


class GridOnlyVideoProcessor:
    """Stands in for Qwen2VLVideoProcessor's pixel work: returns preset grids, merge_size 2."""

    merge_size = 2

    def __init__(self) -> None:
        self.next_grids: list[tuple[int, int, int]] = []

    def __call__(self, videos, **kwargs):
        assert len(videos) == len(self.next_grids), "one preset grid per video"
        return {"video_grid_thw": torch.tensor(self.next_grids, dtype=torch.long).reshape(-1, 3)}


class OracleProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor that accepts the grid-only video stand-in (its class check needs torchvision)."""

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor":
            return type(argument)
        return super().check_argument_for_proper_class(argument_name, argument)


def build_oracle(tokenizer) -> OracleProcessor:
    image_processor = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return OracleProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=GridOnlyVideoProcessor(),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )


def oracle_encode(processor: OracleProcessor, text: str, conversation: Conversation) -> dict:
    """Run the processor on the rendered template text with the conversation's images and videos."""
    images = [
        Image.new("RGB", size, color=(index * 40 % 256, 90, 160))
        for index, size in enumerate(conversation.image_sizes)
    ]
    videos = [np.zeros((2 * grid[0], 28, 28, 3), dtype=np.uint8) for grid in conversation.video_grids]
    processor.video_processor.next_grids = list(conversation.video_grids)
    outputs = processor(text=[text], images=images or None, videos=videos or None)
    image_grids = [
        tuple(grid) for grid in np.asarray(outputs.get("image_grid_thw", np.zeros((0, 3)))).tolist()
    ]
    return {
        "input_ids": list(outputs["input_ids"][0]),
        "mm_token_type_ids": list(outputs["mm_token_type_ids"][0]),
        "image_grids": image_grids,
        "video_grids": list(conversation.video_grids),
    }


def visual_grids_in_order(conversation: Conversation, image_grids, video_grids) -> list[tuple[int, int, int]]:
    image_iter, video_iter = iter(image_grids), iter(video_grids)
    return [next(image_iter) if kind == "image" else next(video_iter) for kind in conversation.visual_kinds]


def release_tokenizer_dir() -> str | None:
    """A real Qwen2-VL release tokenizer on this machine, if any (env var first, then the HF cache)."""
    explicit = os.environ.get("QVLTRAIN_QWEN2VL_TOKENIZER")
    if explicit:
        return explicit
    cache = os.environ.get("HF_HUB_CACHE", os.path.expanduser("~/.cache/huggingface/hub"))
    pattern = os.path.join(cache, "models--Qwen--Qwen2-VL-*-Instruct", "snapshots", "*", "tokenizer.json")
    found = sorted(glob.glob(pattern))
    return os.path.dirname(found[0]) if found else None
