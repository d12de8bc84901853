"""Shared by the Qwen2.5-VL model tests: the tiny model, its transformers twin, decoded samples."""

from __future__ import annotations

import json
import random

import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from qvltrain.data.config import DatasetConfig
from qvltrain.data.decode import SampleDecoder
from qvltrain.model.common.checkpoint_guards import special_token_ids
from qvltrain.model.qwen2_5_vl.config import FLAVORS, build_hf_config
from qvltrain.text.tokenizer import TokenizerInfo
from qvltrain.vision.budgets import ImageBudget
from qvltrain.vision.device import collate_patches, to_pixel_values
from tests.data.mixed_shards import KINDS, VIDEO_BUDGET, jpeg, make_sample

# Up to 20x20 merged tokens: images span several 4x4-token windows, cut short at the edges.
IMAGE_BUDGET = ImageBudget(min_pixels=3136, max_pixels=400 * 784)


def tiny_reference(tokenizer, seed: int = 0) -> Qwen2_5_VLForConditionalGeneration:
    """The tiny flavor as plain transformers (sdpa), random weights from `seed`."""
    torch.manual_seed(seed)
    config = build_hf_config(FLAVORS["tiny"], special_token_ids(tokenizer), len(tokenizer), "sdpa")
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def decoder(tokenizer, rule: str = "paper", max_length: int = 4096) -> SampleDecoder:
    dataset = DatasetConfig(
        name="mixed", shards="unused", image_budget=IMAGE_BUDGET, video_budget=VIDEO_BUDGET
    )
    options = {"box_format": "qwen2_5_vl", "tokens_per_second": 2}
    return SampleDecoder(
        dataset, "chatml", TokenizerInfo.from_tokenizer(tokenizer), max_length, rule, options
    )


def decoded_samples(
    tokenizer,
    rule: str = "paper",
    kinds=KINDS * 2,
    seed: int = 3,
    big_image: tuple[int, int] | None = (330, 500),
) -> list:
    """Text, image, two-image, MP4 and frame-list samples, plus one image of `big_image` (height,
    width) pixels: several windows, cut short at the edges (500x330: 18 x 12 merged tokens)."""
    sample_decoder = decoder(tokenizer, rule)
    rng = random.Random(seed)
    samples = []
    for index, kind in enumerate(kinds):
        messages, media, sizes = make_sample(kind, rng, index)
        record = {"task": "chat", "messages": messages, "meta": {"image_sizes": sizes}}
        raw = {"__key__": f"{kind}{index}", "json": json.dumps(record).encode(), **media}
        samples.append(sample_decoder(raw))
    if big_image is None:
        return samples
    height, width = big_image
    big = [
        {"role": "user", "content": [{"type": "image", "file": "0.jpg"}, {"type": "text", "text": "what"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a picture"}]},
    ]
    record = {"task": "chat", "messages": big, "meta": {"image_sizes": [[width, height]]}}
    samples.append(
        sample_decoder(
            {"__key__": "big", "json": json.dumps(record).encode(), "0.jpg": jpeg(height, width, 9)}
        )
    )
    return samples


def reference_logits(model, sample, given_positions: bool) -> torch.Tensor:
    """transformers' forward of one sample alone: [L, V]. Without `given_positions` transformers
    computes the positions itself from the grids and `second_per_grid_ts`."""
    inputs = {"input_ids": sample.input_ids[None], "mm_token_type_ids": sample.mm_token_type_ids[None]}
    if given_positions:
        inputs["position_ids"] = sample.position_ids[1:, None]  # [3, 1, L]
    for repeat, pixels_key, grid_key in (
        (2, "pixel_values", "image_grid_thw"),  # images store one frame (temporal_repeat 2)
        (1, "pixel_values_videos", "video_grid_thw"),
    ):
        items = [p for p in sample.patches if p.temporal_repeat == repeat]
        if items:
            rows, grid, repeats = collate_patches(items)
            inputs[pixels_key], inputs[grid_key] = to_pixel_values(rows, grid, repeats), grid
    videos = [p.second_per_grid_t for p in sample.patches if p.temporal_repeat == 1]
    if videos:
        inputs["second_per_grid_ts"] = torch.tensor(videos, dtype=torch.float32)
    return model(**inputs).logits[0]
