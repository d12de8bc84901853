"""Loading and saving Hugging Face models the same way for every family (build, export, processor)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from qvltrain.model.family import POSITION_RULE_KEY


def finish_built_model(model, tokenizer, position_rule: str):
    """Checks and settings every freshly built or loaded training model gets: a vocabulary that holds
    the tokenizer, no KV cache, and the position rule recorded (saved with checkpoints and exports)."""
    if model.config.text_config.vocab_size < len(tokenizer):
        raise ValueError(
            f"the model's vocabulary ({model.config.text_config.vocab_size} rows) is smaller than the "
            f"tokenizer ({len(tokenizer)} tokens): model.tokenizer does not belong to this model"
        )
    model.config.use_cache = False
    setattr(model.config, POSITION_RULE_KEY, position_rule)
    return model


def load_checkpoint_model(model_class, config_class, hf_config_dir: str, state_dict: dict[str, torch.Tensor]):
    """`model_class` of a checkpoint's saved config with its consolidated fp32 weights (export);
    refuses missing or unexpected weights (a tied LM head may be missing)."""
    hf_config = config_class.from_pretrained(hf_config_dir)
    with torch.device("meta"):
        model = model_class(hf_config)
    missing, unexpected = model.load_state_dict(state_dict, strict=False, assign=True)
    tied = {"lm_head.weight"} if hf_config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ValueError(
            f"checkpoint {os.path.dirname(hf_config_dir)} does not match its config: missing "
            f"{sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    if tied:
        model.tie_weights()
    return model.float().eval()


def save_qwen2_vl_image_processor(out_dir: str, image_budget: Mapping[str, int]) -> None:
    """Qwen2-VL's image processor config (also Qwen2.5-VL's: 14-px patches, 2x2 merge, CLIP mean/std)
    under the run's pixel budget."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": image_budget["min_pixels"], "longest_edge": image_budget["max_pixels"]}
    )
    processor.save_pretrained(out_dir)
