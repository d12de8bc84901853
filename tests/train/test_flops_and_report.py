"""FLOP counts against torch's FlopCounterMode on the real tiny model; the report draws real PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from transformers import Qwen2VLForConditionalGeneration

from apps.report import write_report
from qvltrain.model.common.checkpoint_guards import special_token_ids
from qvltrain.model.config import ModelConfig
from qvltrain.model.qwen2_vl.build import build_hf_config
from qvltrain.model.qwen2_vl.flops import Qwen2VLFlops
from qvltrain.text.tokenizer import load_tokenizer
from qvltrain.train.flops import training_flops


def tiny_model():
    tokenizer = load_tokenizer(None)
    config = build_hf_config(
        ModelConfig().architecture, special_token_ids(tokenizer), tokenizer_size=len(tokenizer)
    )
    config._attn_implementation = "eager"  # attention as plain matmuls, which the counter sees
    return Qwen2VLForConditionalGeneration(config).eval()


def test_llm_forward_matches_flop_counter() -> None:
    model = tiny_model()
    shape = Qwen2VLFlops.from_hf_config(model.config)
    length = 37
    input_ids = torch.randint(0, 1000, (1, length))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=input_ids)
    # The counter sees the full L x L score matrix of eager attention; ours counts the causal half.
    causal_attention = shape.num_layers * 2 * 2 * shape.hidden * length * (length + 1) / 2
    full_attention = shape.num_layers * 2 * 2 * shape.hidden * length * length
    expected = shape.llm_forward_flops([length], num_logit_tokens=length) - causal_attention + full_attention
    assert counter.get_total_flops() == expected


def test_vision_forward_matches_flop_counter() -> None:
    model = tiny_model()
    shape = Qwen2VLFlops.from_hf_config(model.config)
    grid_thw = [[1, 4, 6], [2, 2, 4]]
    pixel_values = torch.randn(sum(t * h * w for t, h, w in grid_thw), shape.patch_dim)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.model.visual(pixel_values, grid_thw=torch.tensor(grid_thw))
    tower, merger = shape.vision_forward_flops(grid_thw)  # attention within each temporal slice
    assert counter.get_total_flops() == tower + merger


def test_training_flops_follow_the_trainable_sets() -> None:
    shape = Qwen2VLFlops.from_hf_config(tiny_model().config)
    args = ([100, 50], 150, [[1, 4, 4]])
    tower, merger = shape.vision_forward_flops(args[2])
    llm = shape.llm_forward_flops(args[0], args[1])
    assert training_flops(shape, *args, trainable=["vision_tower", "merger", "llm"]) == 3 * (
        tower + merger + llm
    )
    assert training_flops(shape, *args, trainable=["merger", "llm"]) == tower + 3 * merger + 3 * llm
    assert (
        training_flops(shape, *args, trainable=["vision_tower", "merger"]) == 3 * tower + 3 * merger + 2 * llm
    )


def test_report_draws_pngs(tmp_path: Path) -> None:
    with open(tmp_path / "metrics.jsonl", "w") as handle:
        for step in range(1, 21):
            record = {"step": step, "loss": 5 / step, "lr/llm": 1e-3 * step / 20, "tokens_per_s": 1000 + step}
            handle.write(json.dumps(record) + "\n")
        handle.write(json.dumps({"step": 20, "val_loss": 0.4}) + "\n")
    paths = write_report(str(tmp_path))
    assert sorted(Path(p).name for p in paths) == ["loss.png", "lr.png", "tokens_per_s.png"]
    image = Image.open(paths[0])
    assert image.size == (720, 420)
    assert len(set(image.convert("RGB").getcolors(maxcolors=1 << 16) or [])) > 3  # something was drawn
