"""Build, load and export transformers' Qwen2.5-VL: from a flavor, a local Hugging Face folder, or the
consolidated weights of a checkpoint. An export is a folder `Qwen2_5_VLForConditionalGeneration`
loads (config.json model_type "qwen2_5_vl", safetensors, the processor config).

Under ZeRO-3 the model is created partitioned (`deepspeed.zero.Init`, entered by transformers when a
live `HfDeepSpeedConfig` says stage 3), so a 72B model never materialises whole on one rank.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from qvltrain.model.common.checkpoint_guards import (
    check_checkpoint_matches,
    recorded_position_rule,
    special_token_ids,
)
from qvltrain.model.common.hf_io import finish_built_model, save_qwen2_vl_image_processor
from qvltrain.model.common.hf_io import load_checkpoint_model as load_weights_into
from qvltrain.model.qwen2_5_vl.config import build_hf_config
from qvltrain.model.qwen2_5_vl.positions import use_position_rule

RELEASE_POSITION_RULE = "paper"
"""The rule of a checkpoint that records none: the released Qwen2.5-VL code resumed text at the
largest position + 1 (qvltrain/text/positions.py)."""


def build_model(config, tokenizer, *, zero3: bool) -> Qwen2_5_VLForConditionalGeneration:
    """The model in fp32 (DeepSpeed casts to bf16 on GPU), partitioned at creation when `zero3`.

    `config` is the run's ModelConfig. The caller keeps an `HfDeepSpeedConfig` alive while this runs
    when `zero3` is set. A checkpoint (`init_from`) is checked against the tokenizer and position rule
    before any weight is read.
    """
    if config.init_from is not None:
        if not os.path.isfile(os.path.join(config.init_from, "config.json")):
            raise ValueError(
                f"model.init_from={config.init_from!r}: no config.json there; expected a local Hugging Face "
                "folder such as the previous stage's export (launch/export_hf.py)"
            )
        hf_config = Qwen2_5_VLConfig.from_pretrained(config.init_from)
        check_checkpoint_matches(hf_config, tokenizer, config, RELEASE_POSITION_RULE)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            config.init_from,
            dtype=torch.float32,
            attn_implementation=config.attn_implementation,
            local_files_only=True,
        )
    else:
        hf_config = build_hf_config(
            config.architecture, special_token_ids(tokenizer), len(tokenizer), config.attn_implementation
        )
        model = Qwen2_5_VLForConditionalGeneration._from_config(hf_config, dtype=torch.float32)
    return finish_built_model(model, tokenizer, config.position_rule)


def load_pretrained(folder: str) -> Qwen2_5_VLForConditionalGeneration:
    """An exported folder in eval mode, generating with the positions it was trained with."""
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, local_files_only=True).eval()
    return use_position_rule(model, recorded_position_rule(model.config, RELEASE_POSITION_RULE))


def load_checkpoint_model(hf_config_dir: str, state_dict: dict[str, torch.Tensor]):
    """The model of a checkpoint's saved config with its consolidated fp32 weights (export)."""
    return load_weights_into(Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLConfig, hf_config_dir, state_dict)


def save_processor(out_dir: str, image_budget: Mapping[str, int]) -> None:
    """The image processor config under the run's pixel budget."""
    save_qwen2_vl_image_processor(out_dir, image_budget)
