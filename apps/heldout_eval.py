"""Held-out task metrics of an exported model, by greedy generation with transformers.

    python -m apps.heldout_eval EXPORT_DIR --shards data/digits/caption/validation --task caption
    python -m apps.heldout_eval EXPORT_DIR --shards data/digits/grounding/validation --task grounding

Each shard sample is rendered with the chatml template exactly as in training; the prompt is
everything before the last trained (assistant) span, the reference is that span. `caption` scores
exact matches of the generated answer; `grounding` scores boxes with IoU >= 0.5 against the
reference box, both parsed in the model family's box format (`qvltrain.text.box_parsing.BOX_PARSERS`;
Qwen2-VL: [0, 1000) coordinates from `<|box_start|>(x1,y1),(x2,y2)<|box_end|>`). The family comes
from the export's config.json `model_type`. Positions, in the prompt and for every generated token,
follow the rule the model was trained with (`qvltrain_position_rule` in its config.json). Answers
may run to the longest reference answer + 16 tokens (`--max-new-tokens` to change), so no well-formed
answer is cut.
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoConfig

from qvltrain.data.config import DatasetConfig
from qvltrain.data.decode import BadSample, DecodedSample, SampleDecoder
from qvltrain.data.reader import ShardError, iter_samples
from qvltrain.data.shards import expand_shards
from qvltrain.model.family import family_of_hf_config
from qvltrain.text.box_parsing import BOX_PARSERS
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.vision.budgets import ImageBudget, VideoBudget
from qvltrain.vision.device import collate_patches, to_pixel_values


@dataclass
class Prompted:
    key: str
    prompt_ids: torch.Tensor  # [P] int64
    reference: str
    sample: DecodedSample
    reference_tokens: int  # the reference answer's length in tokens, end of turn included


ANSWER_SLACK_TOKENS = 16
"""Tokens a generated answer may run past the longest reference answer."""


def last_trained_span(labels: torch.Tensor) -> tuple[int, int]:
    trained = torch.nonzero(labels != -100).flatten()
    end = int(trained[-1]) + 1
    start = end - 1
    while start > 0 and labels[start - 1] != -100:
        start -= 1
    return start, end


def prompt_and_reference(sample: DecodedSample, tokenizer) -> Prompted:
    start, end = last_trained_span(sample.labels)
    reference = tokenizer.decode(sample.input_ids[start:end], skip_special_tokens=False)
    return Prompted(sample.key, sample.input_ids[:start], clean_answer(reference), sample, end - start)


def answer_budget(prompts: list[Prompted], slack: int = ANSWER_SLACK_TOKENS) -> int:
    """New tokens a generated answer may take: the longest reference plus `slack`, so a well-formed
    answer is never cut (a Qwen2.5-VL JSON box takes ~40 tokens of the tiny tokenizer; a fixed cap
    of 32 scored every such box as unparsable)."""
    return max(prompted.reference_tokens for prompted in prompts) + slack


def clean_answer(text: str) -> str:
    return text.split("<|im_end|>")[0].strip()


def box_iou(first: tuple[int, ...], second: tuple[int, ...]) -> float:
    width = max(0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0, min(first[3], second[3]) - max(first[1], second[1]))
    intersection = width * height
    area = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return intersection / (area - intersection) if area - intersection > 0 else 0.0


def generate(model, prompted: Prompted, tokenizer, max_new_tokens: int) -> str:
    sample = prompted.sample
    length = len(prompted.prompt_ids)
    inputs = {
        "input_ids": prompted.prompt_ids[None],
        "mm_token_type_ids": sample.mm_token_type_ids[None, :length],
    }
    for repeat, grid_key, pixel_key in (
        (2, "image_grid_thw", "pixel_values"),
        (1, "video_grid_thw", "pixel_values_videos"),
    ):
        items = [p for p in sample.patches if p.temporal_repeat == repeat]
        if items:
            pixels, grids, repeats = collate_patches(items)
            inputs[pixel_key] = to_pixel_values(pixels, grids, repeats)
            inputs[grid_key] = grids
    seconds = [p.second_per_grid_t for p in sample.patches if p.temporal_repeat == 1]
    if seconds and "second_per_grid_ts" in inspect.signature(model.forward).parameters:
        # absolute-time positions (Qwen2.5-VL): the seconds per tube the prompt was rendered with
        inputs["second_per_grid_ts"] = torch.tensor(seconds, dtype=torch.float32)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return clean_answer(tokenizer.decode(output[0, length:], skip_special_tokens=False))


def read_prompts(
    shards: str,
    tokenizer,
    budget: ImageBudget,
    video_budget: VideoBudget,
    limit: int,
    render_options: Mapping[str, Any] | None = None,
):
    dataset = DatasetConfig(
        name="eval", shards=shards, image_budget=budget, video_budget=video_budget, template="chatml"
    )
    info = TokenizerInfo.from_tokenizer(tokenizer)
    decoder = SampleDecoder(dataset, "chatml", info, max_length=1 << 20, render_options=render_options)
    prompts = []
    for url in expand_shards(shards):  # read as the loader reads them (qvltrain.data.reader)
        try:
            for raw in iter_samples(url):
                if raw.problem is not None:
                    continue
                try:
                    prompts.append(prompt_and_reference(decoder.decode_raw(raw), tokenizer))
                except BadSample:
                    continue
                if len(prompts) >= limit:
                    return prompts
        except ShardError as error:
            print(f"[heldout_eval] {error}: the rest of this shard is left out")
    return prompts


def evaluate_task(
    model_dir: str,
    shards: str,
    task: str,
    limit: int,
    budget: ImageBudget,
    video_budget: VideoBudget,
    max_new_tokens: int | None = None,
) -> dict:
    tokenizer = load_tokenizer(model_dir)
    family = family_of_hf_config(AutoConfig.from_pretrained(model_dir, local_files_only=True))
    model = family.load_pretrained(model_dir)  # generates with the positions it was trained with
    render_options = family.render_options(model.config, family.trained_position_rule(model.config))
    prompts = read_prompts(shards, tokenizer, budget, video_budget, limit, render_options)
    parse_box = BOX_PARSERS.get(family.box_format)
    if task == "grounding" and parse_box is None:
        raise ValueError(
            f"--task grounding: box format {family.box_format!r} of family {family.name} has no parser in "
            "qvltrain/text/box_parsing.py BOX_PARSERS"
        )
    if not prompts:
        raise ValueError(f"no usable samples in {shards}")
    max_new_tokens = max_new_tokens or answer_budget(prompts)
    hits = 0
    for prompted in prompts:
        answer = generate(model, prompted, tokenizer, max_new_tokens=max_new_tokens)
        if task == "grounding":
            predicted, reference = parse_box(answer), parse_box(prompted.reference)
            hit = predicted is not None and reference is not None and box_iou(predicted, reference) >= 0.5
        else:
            hit = answer == prompted.reference
        hits += int(hit)
    metric = "grounding_iou50_accuracy" if task == "grounding" else "exact_match_accuracy"
    return {
        "task": task,
        "shards": shards,
        "num_samples": len(prompts),
        metric: hits / len(prompts),
        "max_new_tokens": max_new_tokens,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="an exported Hugging Face folder (launch/export_hf.py)")
    parser.add_argument("--shards", required=True, help="validation shards (folder, brace pattern, glob)")
    parser.add_argument("--task", choices=("caption", "grounding", "answer"), default="answer")
    parser.add_argument("--limit", type=int, default=200, help="samples to evaluate")
    parser.add_argument("--min-pixels", type=int, default=3136)
    parser.add_argument("--max-pixels", type=int, default=50176)
    parser.add_argument("--video-total-pixels", type=int, default=16 * 50176)
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help=f"generation cap (default: the longest reference answer + {ANSWER_SLACK_TOKENS} tokens)",
    )
    args = parser.parse_args(argv)
    if args.max_new_tokens is not None and args.max_new_tokens <= 0:
        parser.error(f"--max-new-tokens={args.max_new_tokens}: must be positive")
    budget = ImageBudget(min_pixels=args.min_pixels, max_pixels=args.max_pixels)
    video_budget = VideoBudget(
        total_pixels=args.video_total_pixels, min_pixels=args.min_pixels, max_pixels=args.max_pixels
    )
    result = evaluate_task(
        args.model_dir, args.shards, args.task, args.limit, budget, video_budget, args.max_new_tokens
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
