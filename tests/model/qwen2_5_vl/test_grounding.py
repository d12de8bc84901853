"""box_format qwen2_5_vl: absolute pixels of the resized image as `{"bbox_2d": [...]}` (docs/formats.md
examples), rendered inside a sample from the image's grid, and parsed back by held-out grounding."""

from __future__ import annotations

import pytest

from qvltrain.text.box_parsing import BOX_PARSERS
from qvltrain.text.config import RenderConfig
from qvltrain.text.errors import SkipSample
from qvltrain.text.grounding import BOX_FORMATTERS, qwen2_5_vl_box_text
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.vision.resize import smart_resize


@pytest.mark.parametrize(
    ("bbox", "size", "expected"),
    [
        ([100, 50, 300, 200], (640, 480), '{"bbox_2d": [101, 50, 302, 198]}'),
        ([412, 88, 630, 301], (1024, 768), '{"bbox_2d": [417, 87, 637, 296]}'),
        ([0, 0, 640, 480], (640, 480), '{"bbox_2d": [0, 0, 644, 476]}'),  # far edges on the resized size
    ],
)
def test_documented_examples(bbox, size, expected) -> None:
    height, width = smart_resize(size[1], size[0], min_pixels=3136, max_pixels=1003520)
    box = qwen2_5_vl_box_text(bbox, size, (width, height))
    assert box.text == expected and not box.clipped
    assert BOX_PARSERS["qwen2_5_vl"](f"the cat [{box.text}]") == tuple(
        float(value) for value in expected.split("[")[1].rstrip("]}").split(",")
    )


def test_clipping_and_missing_resized_size() -> None:
    assert qwen2_5_vl_box_text([-10, 0, 700, 480], (640, 480), (644, 476)).clipped
    with pytest.raises(SkipSample, match="resized size"):
        qwen2_5_vl_box_text([0, 0, 10, 10], (640, 480), None)


def test_rendered_sample_uses_the_grid_of_its_image() -> None:
    tokenizer = load_tokenizer(None)
    info = TokenizerInfo.from_tokenizer(tokenizer)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "where is the cat"}]},
        {
            "role": "assistant",
            "content": [{"type": "ref", "text": "cat"}, {"type": "box", "bbox": [100, 50, 300, 200]}],
        },
    ]
    grid = (1, 34, 46)  # the model sees 644 x 476 pixels
    sample = render_sample(messages, [grid], [(640, 480)], info, RenderConfig(box_format="qwen2_5_vl"))
    text = tokenizer.decode(sample.input_ids.tolist())
    assert '<|box_start|>{"bbox_2d": [101, 50, 302, 198]}<|box_end|>' in text
    qwen2_vl = render_sample(messages, [grid], [(640, 480)], info, RenderConfig(box_format="qwen2_vl"))
    assert "<|box_start|>(156,104),(468,416)<|box_end|>" in tokenizer.decode(qwen2_vl.input_ids.tolist())
    assert set(BOX_FORMATTERS) == set(BOX_PARSERS)


def test_a_box_before_its_image_is_a_counted_skip() -> None:
    info = TokenizerInfo.from_tokenizer(load_tokenizer(None))
    messages = [
        {"role": "user", "content": [{"type": "box", "bbox": [1, 1, 5, 5], "image": 0}, {"type": "image"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "yes"}]},
    ]
    with pytest.raises(SkipSample) as error:
        render_sample(messages, [(1, 4, 4)], [(56, 56)], info, RenderConfig(box_format="qwen2_5_vl"))
    assert error.value.reason == "box_image_unknown"
