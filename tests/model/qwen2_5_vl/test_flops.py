"""Qwen2.5-VL FLOPs against torch's FlopCounterMode on the tiny model (eager attention: the tower then
runs each window or frame as its own matmuls, which the counter sees exactly)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from qvltrain.model.common.checkpoint_guards import special_token_ids
from qvltrain.model.qwen2_5_vl.config import FLAVORS, build_hf_config
from qvltrain.model.qwen2_5_vl.flops import QWEN2_5_VL_3B, Qwen2_5_VLFlops
from qvltrain.text.tokenizer import load_tokenizer


def tiny_model():
    from transformers import Qwen2_5_VLForConditionalGeneration

    tokenizer = load_tokenizer(None)
    config = build_hf_config(FLAVORS["tiny"], special_token_ids(tokenizer), len(tokenizer), "eager")
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def test_llm_forward_matches_flop_counter() -> None:
    model = tiny_model()
    shape = Qwen2_5_VLFlops.from_hf_config(model.config)
    length = 29
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=torch.randint(0, 1000, (1, length)))
    # The counter sees eager attention's full L x L scores; ours counts the causal half.
    causal = shape.num_layers * 2 * 2 * shape.hidden * length * (length + 1) / 2
    full = shape.num_layers * 2 * 2 * shape.hidden * length * length
    assert (
        counter.get_total_flops()
        == shape.llm_forward_flops([length], num_logit_tokens=length) - causal + full
    )


def test_vision_forward_matches_flop_counter_with_windows() -> None:
    model = tiny_model()
    shape = Qwen2_5_VLFlops.from_hf_config(model.config)
    grid_thw = [[1, 20, 12], [2, 8, 10], [1, 2, 2]]  # windows cut short at the edges, a video, one token
    pixel_values = torch.randn(sum(t * h * w for t, h, w in grid_thw), shape.patch_dim)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.model.visual(pixel_values, grid_thw=torch.tensor(grid_thw))
    tower, merger = shape.vision_forward_flops(grid_thw)
    assert counter.get_total_flops() == tower + merger


def test_reference_is_the_3b_release() -> None:
    tokenizer = load_tokenizer(None)
    config = build_hf_config(FLAVORS["qwen2_5_vl_3b"], special_token_ids(tokenizer), len(tokenizer), "sdpa")
    assert Qwen2_5_VLFlops.from_hf_config(config) == QWEN2_5_VL_3B
