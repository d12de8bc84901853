"""The evaluation helpers: prompt/reference split from the rendered sample, box IoU, answer budget."""

from __future__ import annotations

import torch

from apps.heldout_eval import (
    ANSWER_SLACK_TOKENS,
    Prompted,
    answer_budget,
    box_iou,
    clean_answer,
    last_trained_span,
)


def test_last_trained_span_finds_the_final_answer() -> None:
    labels = torch.tensor([-100, -100, 5, 6, -100, -100, 7, 8, 9, -100])
    assert last_trained_span(labels) == (6, 9)
    assert last_trained_span(torch.tensor([-100, 1, 2])) == (1, 3)


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == 50 / 150
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_clean_answer_stops_at_end_of_turn() -> None:
    assert clean_answer(" a handwritten 7<|im_end|>\n<|im_start|>user") == "a handwritten 7"


def test_boxes_are_parsed_in_the_family_format_and_round_trip() -> None:
    from qvltrain.text.box_parsing import BOX_PARSERS
    from qvltrain.text.grounding import BOX_FORMATTERS

    parse = BOX_PARSERS["qwen2_vl"]
    assert parse("the digit <|box_start|>(402,114),(615,391)<|box_end|>") == (402, 114, 615, 391)
    assert parse("no box here") is None
    rendered = BOX_FORMATTERS["qwen2_vl"]([412, 88, 630, 301], (1024, 768))
    assert parse(rendered.text) == (402, 114, 615, 391)  # docs/formats.md's example


def test_a_qwen2_5_vl_box_answer_fits_the_answer_budget() -> None:
    """Its JSON box is longer than the 32 tokens the evaluation once allowed: every answer was cut
    before its closing bracket and scored as unparsable (15.5% grounding on a trained demo model)."""
    from qvltrain.text.box_parsing import BOX_PARSERS
    from qvltrain.text.grounding import BOX_FORMATTERS
    from qvltrain.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(None)
    box = BOX_FORMATTERS["qwen2_5_vl"]([79, 3, 107, 31], (112, 112), (112, 112)).text
    if "<|box_start|>" not in box:
        box = f"<|box_start|>{box}<|box_end|>"
    answer = f"<|object_ref_start|>the 3<|object_ref_end|>{box}<|im_end|>"  # as the demo's references
    num_tokens = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
    assert num_tokens > 32
    short = Prompted("short", torch.zeros(3, dtype=torch.long), "a handwritten 7", None, 6)
    long = Prompted("box", torch.zeros(3, dtype=torch.long), answer, None, num_tokens)
    assert answer_budget([short, long]) == num_tokens + ANSWER_SLACK_TOKENS
    cut = tokenizer.decode(tokenizer(answer, add_special_tokens=False)["input_ids"][:32])
    assert BOX_PARSERS["qwen2_5_vl"](cut) is None  # what a cap of 32 left of it
    assert BOX_PARSERS["qwen2_5_vl"](answer) == (79, 3, 107, 31)
