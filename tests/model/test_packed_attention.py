"""Invariant 1: packed == unpacked. Every sample's logits inside a pack equal its logits run alone.

Packs mix text-only, image, multi-image, MP4 video and pre-extracted-frame samples; the reference
is transformers' own forward (sdpa, one sample, its processor-style inputs) on the same weights.
Under the transformers position rule transformers also computes the positions itself; under the
paper rule (the default) it is given the sample's positions, since its own rule differs after videos.
"""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch
from transformers import Qwen2VLForConditionalGeneration

from qvltrain.data.batch import concat_packs, pack_samples
from qvltrain.data.decode import SampleDecoder
from qvltrain.model.common.checkpoint_guards import special_token_ids
from qvltrain.model.common.packed_attention import LLM_ATTENTION, VISION_ATTENTION, packed_attention_forward
from qvltrain.model.config import ModelConfig
from qvltrain.model.qwen2_vl.build import build_hf_config
from qvltrain.model.qwen2_vl.train_module import Qwen2VLTrainModule
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.vision.device import collate_patches, to_pixel_values
from tests.data.mixed_shards import KINDS, dataset, make_sample


@pytest.fixture(scope="module")
def setup():
    tokenizer = load_tokenizer(None)
    torch.manual_seed(0)
    config = build_hf_config(
        ModelConfig().architecture, special_token_ids(tokenizer), tokenizer_size=len(tokenizer)
    )
    reference = Qwen2VLForConditionalGeneration(config).eval()
    module = Qwen2VLTrainModule(copy.deepcopy(reference)).eval()
    info = TokenizerInfo.from_tokenizer(tokenizer)
    samples = {}
    for rule in ("paper", "transformers"):
        decoder = SampleDecoder(dataset("mixed", "unused"), "chatml", info, 4096, position_rule=rule)
        rng = random.Random(3)
        samples[rule] = []
        for index, kind in enumerate(KINDS * 2):
            messages, media, sizes = make_sample(kind, rng, index)
            record = {"task": "chat", "messages": messages, "meta": {"image_sizes": sizes}}
            raw = {"__key__": f"{kind}{index}", "json": json.dumps(record).encode(), **media}
            samples[rule].append(decoder(raw))
    return reference, module, samples, info.special.pad


def reference_logits(model, sample, given_positions: bool = False) -> torch.Tensor:
    """transformers' forward of one sample alone: [L, V]; with `given_positions` at the sample's positions."""
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
    return model(**inputs).logits[0]


@pytest.mark.parametrize("order", ["kinds", "shuffled"])
@pytest.mark.parametrize("rule", ["paper", "transformers"])
def test_packed_logits_equal_unpacked(setup, order: str, rule: str) -> None:
    reference, module, samples, pad_id = setup
    paired = zip(samples["paper"], samples["transformers"], strict=True)
    assert any(
        not torch.equal(a.position_ids, b.position_ids) for a, b in paired
    )  # a video where rules differ
    chosen = list(samples[rule])
    if order == "shuffled":
        random.Random(1).shuffle(chosen)
    half = len(chosen) // 2
    seq_len = (
        max(sum(len(s.input_ids) for s in chosen[:half]), sum(len(s.input_ids) for s in chosen[half:])) + 7
    )
    # Two packs in one micro-batch, each with tail padding: segments and media cross a pack boundary.
    batch = concat_packs(
        [pack_samples(chosen[:half], seq_len, pad_id), pack_samples(chosen[half:], seq_len, pad_id)]
    )
    assert batch.grid_thw is not None and set(batch.temporal_repeat.tolist()) == {1, 2}
    with torch.no_grad():
        packed = module.model.lm_head(module.hidden_states(batch))[0]  # [L, V]
        starts = []
        for offset, part in ((0, chosen[:half]), (seq_len, chosen[half:])):
            for sample in part:
                starts.append(offset)
                offset += len(sample.input_ids)
        assert set(starts) < set(batch.cu_seqlens.tolist())
        for sample, start in zip(chosen, starts, strict=True):
            alone = reference_logits(reference, sample, given_positions=rule == "paper")
            torch.testing.assert_close(
                packed[start : start + len(sample.input_ids)], alone, rtol=1e-4, atol=1e-5
            )


def test_vision_tower_packed_equals_each_item_alone(setup) -> None:
    reference, module, samples, _ = setup
    items = [p for s in samples["paper"] for p in s.patches]
    rows, grid, repeats = collate_patches(items)
    with torch.no_grad():
        packed = module.model.model.visual(to_pixel_values(rows, grid, repeats), grid_thw=grid).pooler_output
        start = 0
        for item in items:
            one_rows, one_grid, one_repeat = collate_patches([item])
            alone = reference.model.visual(to_pixel_values(one_rows, one_grid, one_repeat), grid_thw=one_grid)
            torch.testing.assert_close(
                packed[start : start + item.num_tokens], alone.pooler_output, rtol=1e-4, atol=1e-5
            )
            start += item.num_tokens
    assert module.model.model.visual.config._attn_implementation == VISION_ATTENTION
    assert module.model.model.language_model.config._attn_implementation == LLM_ATTENTION


def test_attention_function_segments_and_gqa() -> None:
    """The CPU path equals a block-diagonal masked SDPA, causal and bidirectional, with GQA."""
    torch.manual_seed(0)
    query, key, value = torch.randn(1, 4, 13, 8), torch.randn(1, 2, 13, 8), torch.randn(1, 2, 13, 8)
    cu_seqlens = torch.tensor([0, 5, 6, 13], dtype=torch.int32)
    segment = torch.repeat_interleave(torch.arange(3), torch.tensor([5, 1, 7]))
    same = segment[:, None] == segment[None, :]
    for causal in (True, False):
        module = torch.nn.Module()
        module.is_causal = causal
        out, _ = packed_attention_forward(
            module, query, key, value, None, cu_seq_lens_q=cu_seqlens, max_length_q=7
        )
        mask = same & torch.ones(13, 13, dtype=torch.bool).tril() if causal else same
        expected = torch.nn.functional.scaled_dot_product_attention(
            query, key.repeat_interleave(2, 1), value.repeat_interleave(2, 1), attn_mask=mask
        ).transpose(1, 2)
        torch.testing.assert_close(out, expected)


def test_unpacked_calls_fall_back_to_sdpa(setup) -> None:
    """With the packed implementation switched on, a plain forward still equals transformers' sdpa."""
    reference, module, samples, _ = setup
    sample = samples["transformers"][1]
    with torch.no_grad():
        torch.testing.assert_close(
            reference_logits(module.model, sample), reference_logits(reference, sample)
        )


@pytest.mark.gpu
def test_cuda_varlen_matches_per_segment(gpu_device) -> None:
    torch.manual_seed(0)
    query, key, value = (
        torch.randn(1, h, 300, 64, device=gpu_device, dtype=torch.bfloat16) for h in (8, 2, 2)
    )
    cu_seqlens = torch.tensor([0, 100, 101, 300], dtype=torch.int32, device=gpu_device)
    module = torch.nn.Module()
    for causal in (True, False):
        module.is_causal = causal
        out, _ = packed_attention_forward(
            module, query, key, value, None, cu_seq_lens_q=cu_seqlens, max_length_q=199
        )
        expected, _ = packed_attention_forward(
            module,
            query.float().cpu(),
            key.float().cpu(),
            value.float().cpu(),
            None,
            cu_seq_lens_q=cu_seqlens.cpu(),
        )
        torch.testing.assert_close(out.float().cpu(), expected, rtol=2e-2, atol=2e-2)
