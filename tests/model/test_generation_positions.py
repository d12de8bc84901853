"""Greedy generation uses the positions of training (the paper's rule), not transformers' own."""

from __future__ import annotations

import pytest
import torch

from apps.heldout_eval import last_trained_span
from qvltrain.model.config import ModelConfig
from qvltrain.model.qwen2_vl.build import build_model
from qvltrain.model.qwen2_vl.positions import rope_index, use_position_rule
from qvltrain.text.config import RenderConfig
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer

VIDEO_GRID = (8, 4, 4)  # 8 tubes at 2x2 merged: T > max(h', w'), where the two rules part
NEW_TOKENS = 3


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(None)


def video_prompt(tokenizer, position_rule: str):
    messages = [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which digit?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a 7"}]},
    ]
    config = RenderConfig(template="chatml", position_rule=position_rule)
    sample = render_sample(messages, [VIDEO_GRID], [], TokenizerInfo.from_tokenizer(tokenizer), config)
    start, _ = last_trained_span(sample.labels)
    return sample, start


def generated_positions(model, sample, prompt_length: int) -> list[torch.Tensor]:
    """The M-RoPE positions `[3, n]` the language model received at each forward of `generate`."""
    seen: list[torch.Tensor] = []

    def capture(_module, _args, kwargs):
        positions = kwargs["position_ids"]
        seen.append((positions[1:] if positions.shape[0] == 4 else positions)[:, 0].clone())

    t, h, w = VIDEO_GRID
    patch_row = 3 * 2 * 14 * 14  # channels * temporal patch * patch * patch
    inputs = dict(
        input_ids=sample.input_ids[None, :prompt_length],
        mm_token_type_ids=sample.mm_token_type_ids[None, :prompt_length],
        pixel_values_videos=torch.randn(t * h * w, patch_row, generator=torch.Generator().manual_seed(0)),
        video_grid_thw=torch.tensor([VIDEO_GRID]),
    )
    hook = model.model.language_model.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
    finally:
        hook.remove()
    return seen


def test_greedy_generation_with_a_video_prompt_uses_the_training_positions(tokenizer) -> None:
    sample, prompt_length = video_prompt(tokenizer, "paper")
    training = sample.position_ids[1:, :prompt_length]  # what the model saw for these tokens in training
    largest = int(training.max())

    model = use_position_rule(build_model(ModelConfig(), tokenizer, zero3=False).eval(), "paper")
    seen = generated_positions(model, sample, prompt_length)
    assert len(seen) == NEW_TOKENS  # prefill, then one forward per further token
    assert torch.equal(seen[0], training)
    for step, positions in enumerate(seen[1:], start=1):
        assert positions.tolist() == [[largest + step]] * 3  # text continues at largest + 1, + 2, ...

    # transformers left to itself resumes text after the video earlier: the hook is what fixes it.
    plain = build_model(ModelConfig(), tokenizer, zero3=False).eval()
    transformers_seen = generated_positions(plain, sample, prompt_length)
    assert not torch.equal(transformers_seen[0], training)
    expected_transformers, _ = video_prompt(tokenizer, "transformers")
    assert torch.equal(transformers_seen[0], expected_transformers.position_ids[1:, :prompt_length])


def test_rope_index_rows_padding_and_grid_sharing(tokenizer) -> None:
    """Two left-padded rows sharing one grid tensor: each row takes its own grids, padding stays 0."""
    sample, length = video_prompt(tokenizer, "paper")
    ids, types = sample.input_ids[:length], sample.mm_token_type_ids[:length]
    pad = 5
    input_ids = torch.stack(
        [torch.cat([torch.zeros(pad, dtype=torch.long), ids]), torch.cat([ids, ids[:pad]])]
    )
    token_types = torch.stack(
        [torch.cat([torch.zeros(pad, dtype=torch.long), types]), torch.cat([types, types[:pad]])]
    )
    mask = torch.ones_like(input_ids)
    mask[0, :pad] = 0
    positions, deltas = rope_index(
        input_ids,
        token_types,
        video_grid_thw=torch.tensor([VIDEO_GRID, VIDEO_GRID]),
        attention_mask=mask,
        position_rule="paper",
        spatial_merge_size=2,
    )
    expected = sample.position_ids[1:, :length]
    assert torch.equal(positions[:, 0, pad:], expected)
    assert positions[:, 0, :pad].eq(0).all()
    assert torch.equal(positions[:, 1, :length], expected)
    assert deltas[0, 0] == int(expected.max()) + 1 - length
    assert deltas[1, 0] == int(positions[:, 1].max()) + 1 - (length + pad)
