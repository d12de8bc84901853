"""Build the Qwen2-VL model of a config: a flavor from scratch or a local Hugging Face folder.

Under ZeRO-3 the model is created partitioned (`deepspeed.zero.Init`, entered by transformers when a
live `HfDeepSpeedConfig` says stage 3), so a 7B model never materialises whole on one rank.
"""

from __future__ import annotations

import os

import torch
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

from qvltrain.model.flavors import ModelConfig, build_hf_config
from qvltrain.text.tokenizer import SpecialTokens


def special_token_ids(tokenizer) -> dict[str, int]:
    """The ids the model config needs, read from the tokenizer (never hard-coded)."""
    tokens = SpecialTokens.from_tokenizer(tokenizer)
    return {
        "pad": tokens.pad,
        "eos": tokens.eos,
        "image_pad": tokens.image_pad,
        "video_pad": tokens.video_pad,
        "vision_start": tokens.vision_start,
        "vision_end": tokens.vision_end,
    }


POSITION_RULE_KEY = "qvltrain_position_rule"
"""Attribute of the transformers config (saved in config.json) naming the position rule trained with."""

RELEASE_POSITION_RULE = "paper"
"""The rule of a checkpoint that records none (the released Qwen2-VL weights)."""


def recorded_position_rule(hf_config) -> str:
    """The position rule a checkpoint was trained with ("paper" when it records none)."""
    return getattr(hf_config, POSITION_RULE_KEY, None) or RELEASE_POSITION_RULE


def check_checkpoint_matches(hf_config, tokenizer, config: ModelConfig) -> None:
    """Refuse a checkpoint whose special-token ids, vocabulary or position rule disagree with this run.

    A mismatch would otherwise train silently on wrong ids (e.g. the bundled 1,073-token tokenizer
    with a released checkpoint's 151,936-row embedding: image pads would be ordinary words).
    """
    ids = special_token_ids(tokenizer)
    where = f"model.init_from={config.init_from!r}"
    tokenizer_name = config.tokenizer or "the bundled tiny tokenizer (model.tokenizer=null)"
    problems = [
        f"{name} is {getattr(hf_config, name, None)} in the checkpoint but {ids[key]} in the tokenizer"
        for name, key in (
            ("image_token_id", "image_pad"),
            ("video_token_id", "video_pad"),
            ("vision_start_token_id", "vision_start"),
            ("vision_end_token_id", "vision_end"),
        )
        if getattr(hf_config, name, ids[key]) != ids[key]
    ]
    vocab_size = hf_config.text_config.vocab_size
    if vocab_size < len(tokenizer):
        problems.append(
            f"the checkpoint has {vocab_size} embedding rows but the tokenizer {len(tokenizer)} tokens"
        )
    if problems:
        raise ValueError(
            f"{where} does not belong to model.tokenizer ({tokenizer_name}): " + "; ".join(problems) + ". "
            "Point model.tokenizer at the tokenizer the checkpoint was trained with (for a release, its own "
            "folder holds tokenizer.json)."
        )
    trained_rule = recorded_position_rule(hf_config)
    if trained_rule != config.position_rule:
        raise ValueError(
            f"{where} was trained with model.position_rule={trained_rule!r} (config.json "
            f"{POSITION_RULE_KEY}, absent means the release's 'paper'), but this run sets "
            f"model.position_rule={config.position_rule!r}; set model.position_rule={trained_rule} to "
            "continue with the positions the weights know"
        )


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
        check_checkpoint_matches(Qwen2VLConfig.from_pretrained(config.init_from), tokenizer, config)
        model = Qwen2VLForConditionalGeneration.from_pretrained(
            config.init_from,
            dtype=torch.float32,
            attn_implementation=config.attn_implementation,
            local_files_only=True,
        )
    else:
        hf_config = build_hf_config(config, special_token_ids(tokenizer), tokenizer_size=len(tokenizer))
        model = Qwen2VLForConditionalGeneration._from_config(hf_config, dtype=torch.float32)
    if model.config.text_config.vocab_size < len(tokenizer):
        raise ValueError(
            f"the model's vocabulary ({model.config.text_config.vocab_size} rows) is smaller than the "
            f"tokenizer ({len(tokenizer)} tokens): model.tokenizer does not belong to this model"
        )
    model.config.use_cache = False
    setattr(model.config, POSITION_RULE_KEY, config.position_rule)  # saved with every checkpoint and export
    return model
