"""Build the Qwen2-VL model of a config: a flavor from scratch or a local Hugging Face folder.

Under ZeRO-3 the model is created partitioned (`deepspeed.zero.Init`, entered by transformers when a
live `HfDeepSpeedConfig` says stage 3), so a 7B model never materialises whole on one rank.
"""

from __future__ import annotations

import os

import torch
from transformers import Qwen2VLForConditionalGeneration

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


def build_model(config: ModelConfig, tokenizer, *, zero3: bool) -> Qwen2VLForConditionalGeneration:
    """The model in fp32 (DeepSpeed casts to bf16 on GPU), partitioned at creation when `zero3`.

    The caller keeps an `HfDeepSpeedConfig` alive while this runs when `zero3` is set; that is how
    transformers knows to create the weights under `deepspeed.zero.Init`.
    """
    if config.init_from is not None:
        if not os.path.isfile(os.path.join(config.init_from, "config.json")):
            raise ValueError(
                f"model.init_from={config.init_from!r}: no config.json there; expected a local Hugging Face "
                "folder such as the previous stage's export (launch/export_hf.py)"
            )
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
    return model
