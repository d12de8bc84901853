"""Invariant 1 for Qwen2.5-VL: every sample's logits inside a pack equal transformers' forward of it
alone (fp32, rtol 1e-4 / atol 1e-5, as for Qwen2-VL). Packs mix text, images large enough for
several windows, MP4 video and frame lists sampled at fractional rates (1.5 and 2.5 positions per
tube). Under the transformers rule transformers computes the positions itself (from the grids and
`second_per_grid_ts`), so the positions the loader computed are checked too; under the paper rule
(the released code's) it is given them."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from qvltrain.data.batch import concat_packs, pack_samples
from qvltrain.model.common.packed_attention import LLM_ATTENTION, VISION_ATTENTION
from qvltrain.model.qwen2_5_vl.train_module import Qwen2_5_VLTrainModule
from qvltrain.text.tokenizer import load_tokenizer
from tests.model.qwen2_5_vl.fixtures import decoded_samples, reference_logits, tiny_reference


@pytest.fixture(scope="module")
def setup():
    tokenizer = load_tokenizer(None)
    reference = tiny_reference(tokenizer)
    module = Qwen2_5_VLTrainModule(copy.deepcopy(reference)).eval()
    samples = {rule: decoded_samples(tokenizer, rule) for rule in ("paper", "transformers")}
    return reference, module, samples, tokenizer.pad_token_id


def test_samples_exercise_windows_and_fractional_time(setup) -> None:
    _, _, samples, _ = setup
    seconds = {p.second_per_grid_t for s in samples["paper"] for p in s.patches if p.temporal_repeat == 1}
    assert any((2 * value) % 1 for value in seconds), seconds  # fractional positions per tube
    grids = [p.grid_thw for s in samples["paper"] for p in s.patches]
    assert max(max(h, w) for _, h, w in grids) > 16  # wider than two 8-patch windows
    assert any(
        not torch.equal(a.position_ids, b.position_ids) for a, b in zip(*samples.values(), strict=True)
    )


@pytest.mark.parametrize("rule", ["paper", "transformers"])
def test_packed_logits_equal_unpacked(setup, rule: str) -> None:
    reference, module, samples, pad_id = setup
    chosen = list(samples[rule])
    random.Random(1).shuffle(chosen)
    half = len(chosen) // 2
    seq_len = max(sum(len(s.input_ids) for s in part) for part in (chosen[:half], chosen[half:])) + 7
    batch = concat_packs(
        [pack_samples(chosen[:half], seq_len, pad_id), pack_samples(chosen[half:], seq_len, pad_id)]
    )
    assert set(batch.temporal_repeat.tolist()) == {1, 2}
    expected_seconds = [p.second_per_grid_t or 0.0 for s in chosen for p in s.patches]
    torch.testing.assert_close(batch.second_per_grid_ts, torch.tensor(expected_seconds))
    with torch.no_grad():
        packed = module.model.lm_head(module.hidden_states(batch))[0]  # [L, V]
        starts, offset = [], 0
        for index, sample in enumerate(chosen):
            offset = seq_len if index == half else offset
            starts.append(offset)
            offset += len(sample.input_ids)
        for sample, start in zip(chosen, starts, strict=True):
            alone = reference_logits(reference, sample, given_positions=rule == "paper")
            torch.testing.assert_close(
                packed[start : start + len(sample.input_ids)], alone, rtol=1e-4, atol=1e-5
            )


def test_frozen_tower_path_equals_the_tower(setup) -> None:
    """The frozen path (our window reorder, blocks, merger) equals transformers' tower forward."""
    reference, module, samples, _ = setup
    from qvltrain.vision.device import collate_patches, to_pixel_values

    items = [p for s in samples["paper"] for p in s.patches]
    rows, grid, repeats = collate_patches(items)
    pixel_values = to_pixel_values(rows, grid, repeats)
    with torch.no_grad():
        ours = module.merge(module.tower_blocks(pixel_values, grid))
        theirs = reference.model.visual(pixel_values, grid_thw=grid).pooler_output
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    assert module.model.model.visual.config._attn_implementation == VISION_ATTENTION
    assert module.model.model.language_model.config._attn_implementation == LLM_ATTENTION
