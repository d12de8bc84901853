"""The evaluation helpers: prompt/reference split from the rendered sample, box IoU."""

from __future__ import annotations

import torch

from apps.heldout_eval import box_iou, clean_answer, last_trained_span


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
