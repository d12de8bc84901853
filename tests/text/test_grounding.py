"""Box strings: known pixel boxes -> known Qwen2-VL strings, edges, clipping and skip reasons."""

from __future__ import annotations

import pytest

from qvltrain.text.config import RenderConfig
from qvltrain.text.errors import SkipSample
from qvltrain.text.grounding import qwen2_vl_box_text
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer


@pytest.mark.parametrize(
    ("bbox", "size", "expected"),
    [
        ([412, 88, 630, 301], (1024, 768), "(402,114),(615,391)"),
        ([0, 0, 1024, 768], (1024, 768), "(0,0),(999,999)"),  # far edge = width -> 999, never 1000
        ([0, 0, 1, 1], (1000, 1000), "(0,0),(1,1)"),
        ([99.9, 10.5, 100.0, 20], (100, 100), "(999,105),(999,200)"),
        ([1, 2, 3, 4], (3, 7), "(333,285),(999,571)"),
    ],
)
def test_known_boxes_render_to_known_strings(bbox, size, expected):
    box = qwen2_vl_box_text(bbox, size)
    assert box.text == expected
    assert not box.clipped


def test_boxes_outside_the_image_are_clipped_and_flagged():
    box = qwen2_vl_box_text([-20, -5, 700, 400], (640, 480))
    assert box.text == "(0,0),(999,833)"
    assert box.clipped


@pytest.mark.parametrize(
    ("bbox", "reason"),
    [
        ([30, 10, 20, 40], "flipped_box"),
        ([10, 40, 20, 30], "flipped_box"),
        ([10, 10, 10, 40], "degenerate_box"),  # zero width
        ([700, 10, 800, 40], "degenerate_box"),  # wholly right of a 640-wide image
        ([-50, -50, 0, 0], "degenerate_box"),  # only touches the corner
        ([1, 2, 3], "degenerate_box"),
        ([1, 2, float("nan"), 4], "degenerate_box"),
    ],
)
def test_unusable_boxes_are_counted_skips(bbox, reason):
    with pytest.raises(SkipSample) as raised:
        qwen2_vl_box_text(bbox, (640, 480))
    assert raised.value.reason == reason
    assert isinstance(raised.value, ValueError)


@pytest.fixture(scope="module")
def info():
    return TokenizerInfo.from_tokenizer(load_tokenizer(None))


def grounding_messages(box_item: dict) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is "},
                                     {"type": "ref", "text": "the red car"}]},
        {"role": "assistant", "content": [{"type": "ref", "text": "the red car"}, box_item]},
    ]  # fmt: skip


def test_rendered_grounding_matches_the_documented_string(info):
    tokenizer = load_tokenizer(None)
    messages = grounding_messages({"type": "box", "bbox": [412, 88, 630, 301], "image": 0})
    sample = render_sample(messages, [(1, 2, 2)], [(1024, 768)], info, RenderConfig())
    assert tokenizer.decode(sample.input_ids).endswith(
        "<|im_start|>assistant\n<|object_ref_start|>the red car<|object_ref_end|>"
        "<|box_start|>(402,114),(615,391)<|box_end|><|im_end|>\n"
    )
    assert sample.num_clipped_boxes == 0


def test_render_counts_clipped_boxes_and_skips_bad_ones(info):
    clipped = grounding_messages({"type": "box", "bbox": [-10, 0, 2000, 700], "image": 0})
    assert render_sample(clipped, [(1, 2, 2)], [(1024, 768)], info, RenderConfig()).num_clipped_boxes == 1
    flipped = grounding_messages({"type": "box", "bbox": [630, 88, 412, 301], "image": 0})
    with pytest.raises(SkipSample, match="flipped_box"):
        render_sample(flipped, [(1, 2, 2)], [(1024, 768)], info, RenderConfig())
    unknown_image = grounding_messages({"type": "box", "bbox": [1, 1, 5, 5], "image": 3})
    with pytest.raises(SkipSample) as raised:
        render_sample(unknown_image, [(1, 2, 2)], [(1024, 768)], info, RenderConfig())
    assert raised.value.reason == "box_image_unknown"
