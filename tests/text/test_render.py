"""RenderConfig validation, visual block expansion, truncation at turn boundaries, counted skips."""

from __future__ import annotations

import pytest
import torch

from qvltrain.text.config import RenderConfig
from qvltrain.text.errors import SkipSample
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(None)


@pytest.fixture(scope="module")
def info(tokenizer):
    return TokenizerInfo.from_tokenizer(tokenizer)


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def turn(role: str, *items: dict) -> dict:
    return {"role": role, "content": list(items)}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"template": "llava"}, "template"),
        ({"box_format": "qwen9"}, "box_format"),
        ({"max_length": 0}, "max_length"),
        ({"spatial_merge_size": 0}, "spatial_merge_size"),
        ({"trained_roles": ()}, "trained_roles"),
        ({"trained_roles": ("tool",)}, "trained_roles"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"RenderConfig.{field}"):
        RenderConfig(**kwargs)


def test_visual_blocks_expand_to_grid_token_counts(info):
    messages = [
        turn("user", {"type": "image"}, {"type": "video"}, text("Compare.")),
        turn("assistant", text("Same.")),
    ]
    sample = render_sample(
        messages, [(1, 6, 8), (3, 4, 4)], [(200, 150)], info, RenderConfig(add_vision_ids=True)
    )
    assert (sample.input_ids == info.special.image_pad).sum() == 12  # 1*6*8 / 4
    assert (sample.input_ids == info.special.video_pad).sum() == 12  # 3*4*4 / 4
    assert sample.visual_kinds == ("image", "video")
    assert torch.equal(sample.image_grid_thw, torch.tensor([[1, 6, 8]]))
    assert torch.equal(sample.video_grid_thw, torch.tensor([[3, 4, 4]]))
    for start, end in sample.visual_spans:
        assert (
            sample.input_ids[start] == info.special.vision_start
            and sample.input_ids[end - 1] == info.special.vision_end
        )
    assert sample.position_ids.shape == (4, len(sample))


def test_grid_count_mismatch_is_an_error(info):
    messages = [turn("user", {"type": "image"}), turn("assistant", text("A digit."))]
    with pytest.raises(ValueError, match="has no grid"):
        render_sample(messages, [], [], info, RenderConfig())
    with pytest.raises(ValueError, match="2 visual_grids given"):
        render_sample(messages, [(1, 2, 2), (1, 2, 2)], [], info, RenderConfig())
    with pytest.raises(ValueError, match="not mergeable"):
        render_sample(messages, [(1, 3, 2)], [], info, RenderConfig())


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([turn("user", {"type": "audio"}), turn("assistant", text("x"))], "unknown_content_type"),
        ([turn("robot", text("x")), turn("assistant", text("x"))], "unknown_role"),
        ([turn("user", text("Only a question?"))], "no_trained_tokens"),
    ],
)
def test_counted_skip_reasons(info, messages, reason):
    with pytest.raises(SkipSample) as raised:
        render_sample(messages, [], [], info, RenderConfig())
    assert raised.value.reason == reason


def multi_turn_messages() -> list[dict]:
    return [
        turn("user", {"type": "image"}, text("What digit is this?")),
        turn("assistant", text("It is a handwritten digit 7.")),
        turn("user", text("Where is it?")),
        turn("assistant", text("In the top left corner.")),
        turn("user", text("Which way does it move?")),
        turn("assistant", text("It moves down and to the right.")),
    ]


def test_truncation_cuts_at_the_last_fitting_turn_boundary(info):
    full = render_sample(multi_turn_messages(), [(1, 4, 4)], [(56, 56)], info, RenderConfig())
    boundary = full.turn_ends[-2]  # end of the second assistant turn
    cut = render_sample(
        multi_turn_messages(), [(1, 4, 4)], [(56, 56)], info, RenderConfig(max_length=boundary + 3)
    )
    assert len(cut) == boundary
    assert cut.num_truncated_tokens == len(full) - boundary
    assert torch.equal(cut.input_ids, full.input_ids[:boundary])
    assert torch.equal(cut.labels, full.labels[:boundary])
    assert torch.equal(cut.position_ids, full.position_ids[:, :boundary])
    assert cut.input_ids[-2] == info.special.im_end


def test_truncation_never_cuts_a_visual_block(info):
    messages = [
        turn("user", text("First question?")),
        turn("assistant", text("First answer.")),
        turn("user", {"type": "image"}, text("And this one?")),
        turn("assistant", text("Second answer.")),
    ]
    full = render_sample(messages, [(1, 8, 8)], [(112, 112)], info, RenderConfig())
    visual_end = full.visual_spans[0][1]
    # A limit inside the image block: the only cut after the block does not fit -> counted skip.
    with pytest.raises(SkipSample) as raised:
        render_sample(messages, [(1, 8, 8)], [(112, 112)], info, RenderConfig(max_length=visual_end - 2))
    assert raised.value.reason == "no_turn_boundary_fits"
    with pytest.raises(SkipSample) as raised:
        render_sample(messages, [(1, 8, 8)], [(112, 112)], info, RenderConfig(max_length=15))
    assert raised.value.reason == "visual_tokens_exceed_length"


def test_plain_turn_boundaries_inside_a_text_run(info, tokenizer):
    messages = [turn("user", text("a handwritten")), turn("assistant", text(" digit 7."))]
    sample = render_sample(messages, [], [], info, RenderConfig(template="plain"))
    assert sample.turn_ends[-1] == len(sample)
    first_end = sample.turn_ends[0]
    assert tokenizer.decode(sample.input_ids[:first_end]) == "a handwritten"
