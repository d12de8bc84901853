"""Qwen2.5-VL greedy generation uses the positions of training (absolute time, the paper's rule),
not transformers' own: prefill and every new token."""

from __future__ import annotations

import torch

from apps.heldout_eval import last_trained_span
from qvltrain.model.qwen2_5_vl.positions import use_position_rule
from qvltrain.text.config import RenderConfig
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from tests.model.qwen2_5_vl.fixtures import tiny_reference

VIDEO_GRID = (6, 4, 4)  # 6 tubes at 2x2 merged
SECONDS = 2 / 3  # sampled at 3 fps: 1.3333334 positions per tube, t-rows 0, 1, 2, 4, 5, 6
NEW_TOKENS = 3


def video_prompt(tokenizer, position_rule: str):
    messages = [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which digit?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a 7"}]},
    ]
    config = RenderConfig(template="chatml", position_rule=position_rule, tokens_per_second=2)
    info = TokenizerInfo.from_tokenizer(tokenizer)
    sample = render_sample(messages, [VIDEO_GRID], [], info, config, video_second_per_grid=[SECONDS])
    start, _ = last_trained_span(sample.labels)
    return sample, start


def generated_positions(model, sample, prompt_length: int) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []

    def capture(_module, _args, kwargs):
        positions = kwargs["position_ids"]
        seen.append((positions[1:] if positions.shape[0] == 4 else positions)[:, 0].clone())

    t, h, w = VIDEO_GRID
    inputs = dict(
        input_ids=sample.input_ids[None, :prompt_length],
        mm_token_type_ids=sample.mm_token_type_ids[None, :prompt_length],
        pixel_values_videos=torch.randn(t * h * w, 1176, generator=torch.Generator().manual_seed(0)),
        video_grid_thw=torch.tensor([VIDEO_GRID]),
        second_per_grid_ts=torch.tensor([SECONDS], dtype=torch.float32),
    )
    hook = model.model.language_model.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
    finally:
        hook.remove()
    return seen


def test_greedy_generation_with_a_video_prompt_uses_the_training_positions() -> None:
    tokenizer = load_tokenizer(None)
    sample, prompt_length = video_prompt(tokenizer, "paper")
    training = sample.position_ids[1:, :prompt_length]
    t_row = training[0][sample.mm_token_type_ids[:prompt_length] == 2][::4]
    assert (t_row - t_row[0]).tolist() == [0, 1, 2, 4, 5, 6]
    largest = int(training.max())

    model = use_position_rule(tiny_reference(tokenizer), "paper")
    seen = generated_positions(model, sample, prompt_length)
    assert len(seen) == NEW_TOKENS
    assert torch.equal(seen[0], training)
    for step, positions in enumerate(seen[1:], start=1):
        assert positions.tolist() == [[largest + step]] * 3

    # transformers left to itself resumes text after the video at start + max(h', w'): earlier.
    transformers_seen = generated_positions(tiny_reference(tokenizer), sample, prompt_length)
    expected_transformers, _ = video_prompt(tokenizer, "transformers")
    assert not torch.equal(transformers_seen[0], training)
    assert torch.equal(transformers_seen[0], expected_transformers.position_ids[1:, :prompt_length])


def test_heldout_eval_generates_a_decoded_video_at_its_training_positions() -> None:
    """apps.heldout_eval hands the sample's seconds per tube to `generate` (absolute time)."""
    import json

    from apps.heldout_eval import generate, prompt_and_reference
    from tests.model.qwen2_5_vl.fixtures import decoder
    from tests.vision.media import write_video

    tokenizer = load_tokenizer(None)
    messages = [
        {"role": "user", "content": [{"type": "video", "file": "v.mp4"}, {"type": "text", "text": "what"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a clip"}]},
    ]
    raw = {"__key__": "v", "json": json.dumps({"task": "video", "messages": messages}).encode()}
    raw["v.mp4"] = write_video(100, fps=10, size=(56, 56))  # 2.5 s per tube: 5 positions per tube
    prompted = prompt_and_reference(decoder(tokenizer)(raw), tokenizer)
    length = len(prompted.prompt_ids)
    model = use_position_rule(tiny_reference(tokenizer), "paper")
    seen: list[torch.Tensor] = []
    hook = model.model.language_model.register_forward_pre_hook(
        lambda _module, _args, kwargs: seen.append(kwargs["position_ids"][-3:, 0].clone()), with_kwargs=True
    )
    try:
        generate(model, prompted, tokenizer, max_new_tokens=2)
    finally:
        hook.remove()
    assert torch.equal(seen[0], prompted.sample.position_ids[1:, :length])
