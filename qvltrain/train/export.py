"""Checkpoint -> Hugging Face folder that `Qwen2VLForConditionalGeneration.from_pretrained` loads.

The ZeRO-3 partitions are merged into one fp32 state dict with DeepSpeed's own offline tool (no
process group, no GPU needed), loaded into a transformers model built from the config the run saved,
and written as safetensors with the tokenizer and the image processor's config (pixel budget of the
run's first dataset).
"""

from __future__ import annotations

import json
import os

import torch
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

from qvltrain.train.checkpoint import DEEPSPEED_TAG, latest_checkpoint, read_meta

WRAPPER_PREFIX = "model."
"""Our training module holds the transformers model as `.model`; its parameter names carry this prefix."""


def resolve_checkpoint(path: str) -> str:
    """A checkpoint directory, or a run directory (its latest committed checkpoint)."""
    if os.path.exists(os.path.join(path, "COMMITTED")):
        return path
    if os.path.isdir(os.path.join(path, "checkpoints")):
        latest = latest_checkpoint(path)
        if latest is not None:
            return latest
        raise ValueError(f"{path} is a run directory without a committed checkpoint")
    raise ValueError(f"{path} is neither a committed checkpoint (no COMMITTED file) nor a run directory")


def load_consolidated_model(checkpoint_dir: str) -> Qwen2VLForConditionalGeneration:
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    hf_config = Qwen2VLConfig.from_pretrained(os.path.join(checkpoint_dir, "hf_config"))
    state_dict = get_fp32_state_dict_from_zero_checkpoint(
        os.path.join(checkpoint_dir, "deepspeed"), tag=DEEPSPEED_TAG
    )
    state_dict = {
        name.removeprefix(WRAPPER_PREFIX): tensor
        for name, tensor in state_dict.items()
        if name.startswith(WRAPPER_PREFIX)
    }
    with torch.device("meta"):
        model = Qwen2VLForConditionalGeneration(hf_config)
    missing, unexpected = model.load_state_dict(state_dict, strict=False, assign=True)
    tied = {"lm_head.weight"} if hf_config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ValueError(
            f"checkpoint {checkpoint_dir} does not match its config: missing {sorted(set(missing) - tied)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    if tied:
        model.tie_weights()
    return model.float().eval()


def export_hf(checkpoint_or_run: str, out_dir: str) -> str:
    """Write the HF folder; returns the checkpoint directory it came from."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from qvltrain.text.tokenizer import load_tokenizer

    checkpoint_dir = resolve_checkpoint(checkpoint_or_run)
    meta = read_meta(checkpoint_dir)
    model = load_consolidated_model(checkpoint_dir)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer = load_tokenizer(meta["config"]["model"]["tokenizer"])
    tokenizer.save_pretrained(out_dir)
    train_sets = meta["config"]["data"].get("train") or []
    budget = train_sets[0]["image_budget"] if train_sets else {"min_pixels": 3136, "max_pixels": 1003520}
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": budget["min_pixels"], "longest_edge": budget["max_pixels"]}
    )
    image_processor.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "qvltrain_export.json"), "w") as provenance:
        json.dump(
            {"checkpoint": checkpoint_dir, "step": meta["step"], "stage": meta["stage"]}, provenance, indent=1
        )
    return checkpoint_dir
