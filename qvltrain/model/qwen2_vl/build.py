"""Build, load and export transformers' Qwen2-VL: from a flavor, a local Hugging Face folder, or the
consolidated weights of a checkpoint.

Under ZeRO-3 the model is created partitioned (`deepspeed.zero.Init`, entered by transformers when a
live `HfDeepSpeedConfig` says stage 3), so a 7B model never materialises whole on one rank.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

from qvltrain.model.common.checkpoint_guards import (
    check_checkpoint_matches,
    recorded_position_rule,
    special_token_ids,
)
from qvltrain.model.common.hf_io import finish_built_model, save_qwen2_vl_image_processor
from qvltrain.model.common.hf_io import load_checkpoint_model as load_weights_into
from qvltrain.model.config import ModelConfig
from qvltrain.model.qwen2_vl.config import Qwen2VLArchitecture
from qvltrain.model.qwen2_vl.positions import use_position_rule

RELEASE_POSITION_RULE = "paper"
"""The rule of a checkpoint that records none (the released Qwen2-VL weights)."""


def build_hf_config(arch: Qwen2VLArchitecture, token_ids: dict[str, int], tokenizer_size: int, attn="sdpa"):
    """The transformers `Qwen2VLConfig` of an architecture; special-token ids come from the tokenizer."""
    llm, vision = arch.llm, arch.vision
    text_config = dict(
        vocab_size=llm.vocab_size or tokenizer_size,
        hidden_size=llm.hidden_size,
        intermediate_size=llm.intermediate_size,
        num_hidden_layers=llm.num_layers,
        num_attention_heads=llm.num_heads,
        num_key_value_heads=llm.num_kv_heads,
        hidden_act="silu",
        max_position_embeddings=llm.max_position_embeddings,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": llm.rope_theta,
            "mrope_section": list(llm.mrope_section),
        },
        bos_token_id=token_ids["pad"],
        eos_token_id=token_ids["eos"],
        pad_token_id=token_ids["pad"],
        tie_word_embeddings=llm.tie_word_embeddings,
    )
    vision_config = dict(
        depth=vision.depth,
        embed_dim=vision.embed_dim,
        hidden_size=llm.hidden_size,
        num_heads=vision.num_heads,
        mlp_ratio=vision.mlp_ratio,
        hidden_act="quick_gelu",
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        in_channels=3,
    )
    hf_config = Qwen2VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_ids["image_pad"],
        video_token_id=token_ids["video_pad"],
        vision_start_token_id=token_ids["vision_start"],
        vision_end_token_id=token_ids["vision_end"],
        tie_word_embeddings=llm.tie_word_embeddings,
    )
    hf_config._attn_implementation = attn
    return hf_config


def build_model(config: ModelConfig, tokenizer, *, zero3: bool) -> Qwen2VLForConditionalGeneration:
    """The model in fp32 (DeepSpeed casts to bf16 on GPU), partitioned at creation when `zero3`.

    The caller keeps an `HfDeepSpeedConfig` alive while this runs when `zero3` is set; that is how
    transformers knows to create the weights under `deepspeed.zero.Init`. A checkpoint (`init_from`)
    is checked against the tokenizer and position rule before any weight is read.
    """
    if config.init_from is not None:
        if not os.path.isfile(os.path.join(config.init_from, "config.json")):
            raise ValueError(
                f"model.init_from={config.init_from!r}: no config.json there; expected a local Hugging Face "
                "folder such as the previous stage's export (launch/export_hf.py)"
            )
        hf_config = Qwen2VLConfig.from_pretrained(config.init_from)
        check_checkpoint_matches(hf_config, tokenizer, config, RELEASE_POSITION_RULE)
        model = Qwen2VLForConditionalGeneration.from_pretrained(
            config.init_from,
            dtype=torch.float32,
            attn_implementation=config.attn_implementation,
            local_files_only=True,
        )
    else:
        hf_config = build_hf_config(
            config.architecture,
            special_token_ids(tokenizer),
            tokenizer_size=len(tokenizer),
            attn=config.attn_implementation,
        )
        model = Qwen2VLForConditionalGeneration._from_config(hf_config, dtype=torch.float32)
    return finish_built_model(model, tokenizer, config.position_rule)


def load_pretrained(folder: str) -> Qwen2VLForConditionalGeneration:
    """An exported folder in eval mode, generating with the positions it was trained with."""
    model = Qwen2VLForConditionalGeneration.from_pretrained(folder, local_files_only=True).eval()
    return use_position_rule(model, recorded_position_rule(model.config, RELEASE_POSITION_RULE))


def load_checkpoint_model(hf_config_dir: str, state_dict: dict[str, torch.Tensor]):
    """The model of a checkpoint's saved config with its consolidated fp32 weights (export)."""
    return load_weights_into(Qwen2VLForConditionalGeneration, Qwen2VLConfig, hf_config_dir, state_dict)


def save_processor(out_dir: str, image_budget: Mapping[str, int]) -> None:
    """The image processor config under the run's pixel budget."""
    save_qwen2_vl_image_processor(out_dir, image_budget)
