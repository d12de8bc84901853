"""Checkpoint -> Hugging Face folder that the family's transformers class loads with `from_pretrained`.

The ZeRO-3 partitions are merged into one fp32 state dict with DeepSpeed's own offline tool (no
process group, no GPU needed), loaded into the transformers model the family builds from the config
the run saved, and written as safetensors with the tokenizer and the family's image processor
config (pixel budget of the run's first dataset).
"""

from __future__ import annotations

import json
import os

from qvltrain.model.family import DEFAULT_FAMILY, ModelFamily, get_family
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


def load_consolidated_model(checkpoint_dir: str, family: ModelFamily | None = None):
    """The checkpoint's model with its ZeRO-3 partitions merged into fp32 weights (no process group);
    `family` defaults to the one the checkpoint was trained with (its meta.json)."""
    family = family or checkpoint_family(read_meta(checkpoint_dir))
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state_dict = get_fp32_state_dict_from_zero_checkpoint(
        os.path.join(checkpoint_dir, "deepspeed"), tag=DEEPSPEED_TAG
    )
    state_dict = {
        name.removeprefix(WRAPPER_PREFIX): tensor
        for name, tensor in state_dict.items()
        if name.startswith(WRAPPER_PREFIX)
    }
    return family.load_checkpoint_model(os.path.join(checkpoint_dir, "hf_config"), state_dict)


def checkpoint_family(meta: dict) -> ModelFamily:
    """The model family a checkpoint was trained with (checkpoints from before families: Qwen2-VL)."""
    return get_family(meta["config"]["model"].get("family") or DEFAULT_FAMILY)


def export_hf(checkpoint_or_run: str, out_dir: str) -> str:
    """Write the HF folder; returns the checkpoint directory it came from."""
    from qvltrain.text.tokenizer import load_tokenizer

    checkpoint_dir = resolve_checkpoint(checkpoint_or_run)
    meta = read_meta(checkpoint_dir)
    family = checkpoint_family(meta)
    model = load_consolidated_model(checkpoint_dir, family)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer = load_tokenizer(meta["config"]["model"]["tokenizer"])
    tokenizer.save_pretrained(out_dir)
    train_sets = meta["config"]["data"].get("train") or []
    budget = train_sets[0]["image_budget"] if train_sets else {"min_pixels": 3136, "max_pixels": 1003520}
    family.save_processor(out_dir, budget)
    with open(os.path.join(out_dir, "qvltrain_export.json"), "w") as provenance:
        json.dump(
            {"checkpoint": checkpoint_dir, "step": meta["step"], "stage": meta["stage"]}, provenance, indent=1
        )
    return checkpoint_dir
