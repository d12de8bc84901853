"""Qwen2.5-VL's architecture config and its flavors (tiny / 3B / 7B / 72B), in code.

The real flavors carry the Qwen2.5-VL releases' config.json values. What differs from Qwen2-VL:
the vision tower has RMSNorm + SwiGLU blocks, attends within 112-px windows (8x8 patches) except in
the full-attention blocks `fullatt_block_indexes`, and maps to the LLM width through `out_hidden_size`;
video positions follow absolute time (`tokens_per_second`, qvltrain/text/positions.py). The tiny
flavor keeps every structural feature at CPU-test dimensions. A YAML names a flavor (`model.flavor`)
and may override single fields (`model.arch`, e.g. `{vision: {depth: 4, fullatt_block_indexes: [1, 3]}}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qvltrain.model.common.overrides import with_overrides

PATCH_SIZE = 14
"""Side of one ViT patch in pixels (as Qwen2-VL)."""
SPATIAL_MERGE_SIZE = 2
"""Patches merged per side into one LLM token (as Qwen2-VL)."""


@dataclass
class Qwen2_5_VLText:
    """The language model (Qwen2 decoder with M-RoPE)."""

    hidden_size: int = 64
    """LLM hidden size (also the vision merger's output size)."""
    intermediate_size: int = 128
    """LLM MLP width."""
    num_layers: int = 2
    """Number of decoder layers."""
    num_heads: int = 4
    """Query heads."""
    num_kv_heads: int = 2
    """Key/value heads (grouped-query attention)."""
    mrope_section: list[int] = field(default_factory=lambda: [2, 3, 3])
    """Rotary pairs given to the t, h, w position rows; must sum to head_dim / 2."""
    rope_theta: float = 1_000_000.0
    """Base of the rotary frequencies."""
    max_position_embeddings: int = 128000
    """Longest position the LLM is configured for (the releases: 128000)."""
    tie_word_embeddings: bool = True
    """Share the input embedding with the LM head (3B: yes, 7B / 72B: no)."""
    vocab_size: int | None = None
    """Embedding rows; None sizes them to the tokenizer (the releases pad: 3B 151936, 7B / 72B 152064)."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model.arch.llm.{name}={getattr(self, name)}: must be positive")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"model.arch.llm.hidden_size={self.hidden_size} is not divisible by "
                f"model.arch.llm.num_heads={self.num_heads}"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"model.arch.llm.num_heads={self.num_heads} is not a multiple of "
                f"model.arch.llm.num_kv_heads={self.num_kv_heads}"
            )
        head_dim = self.hidden_size // self.num_heads
        if len(self.mrope_section) != 3 or sum(self.mrope_section) * 2 != head_dim:
            raise ValueError(
                f"model.arch.llm.mrope_section={list(self.mrope_section)}: three numbers (t, h, w) that "
                f"sum to head_dim/2 = {head_dim // 2}"
            )
        if self.vocab_size is not None and self.vocab_size <= 0:
            raise ValueError(f"model.arch.llm.vocab_size={self.vocab_size}: must be positive or null")


@dataclass
class Qwen2_5_VLVision:
    """The vision tower (ViT with 2D RoPE, RMSNorm + SwiGLU blocks, window attention) and its merger."""

    depth: int = 2
    """Number of ViT blocks."""
    hidden_size: int = 32
    """ViT width (the releases: 1280)."""
    intermediate_size: int = 64
    """Width of the blocks' SwiGLU MLP (the releases: 3420)."""
    num_heads: int = 2
    """ViT attention heads."""
    window_size: int = 112
    """Side of an attention window in resized pixels: 112 = 4x4 merged tokens = 8x8 patches."""
    fullatt_block_indexes: list[int] = field(default_factory=lambda: [1])
    """Blocks that attend over the whole frame; every other block attends within its window."""
    tokens_per_second: int = 2
    """Temporal positions per second of video (absolute-time M-RoPE; every release: 2)."""

    def __post_init__(self) -> None:
        for name in ("depth", "hidden_size", "intermediate_size", "num_heads", "tokens_per_second"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model.arch.vision.{name}={getattr(self, name)}: must be positive")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 4:
            raise ValueError(
                f"model.arch.vision.hidden_size={self.hidden_size} / num_heads={self.num_heads} must "
                "give a head size divisible by 4 (2D rotary: h and w halves of rotated pairs)"
            )
        window_unit = PATCH_SIZE * SPATIAL_MERGE_SIZE
        if self.window_size < window_unit or self.window_size % window_unit:
            raise ValueError(
                f"model.arch.vision.window_size={self.window_size}: must be a positive multiple of "
                f"{window_unit} px (one merged token)"
            )
        bad = [index for index in self.fullatt_block_indexes if not 0 <= index < self.depth]
        if bad or len(set(self.fullatt_block_indexes)) != len(self.fullatt_block_indexes):
            raise ValueError(
                f"model.arch.vision.fullatt_block_indexes={list(self.fullatt_block_indexes)}: distinct "
                f"block indexes in [0, depth={self.depth})"
            )


@dataclass
class Qwen2_5_VLArchitecture:
    """A Qwen2.5-VL model's shape: the language model and the vision tower."""

    llm: Qwen2_5_VLText = field(default_factory=Qwen2_5_VLText)
    """The language model."""
    vision: Qwen2_5_VLVision = field(default_factory=Qwen2_5_VLVision)
    """The vision tower."""

    @property
    def hidden_size(self) -> int:
        return self.llm.hidden_size


def release_vision() -> Qwen2_5_VLVision:
    """The vision tower of every Qwen2.5-VL release (3B / 7B / 72B share it; ~670M parameters)."""
    return Qwen2_5_VLVision(
        depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2,
    )  # fmt: skip


FLAVORS: dict[str, Qwen2_5_VLArchitecture] = {
    # rope_theta 10 for the same reason as Qwen2-VL's tiny flavor (qwen2_vl/config.py): with 8
    # rotary pairs the release's 1e6 leaves the w row nearly still across image columns.
    "tiny": Qwen2_5_VLArchitecture(llm=Qwen2_5_VLText(rope_theta=10.0), vision=Qwen2_5_VLVision()),
    "qwen2_5_vl_3b": Qwen2_5_VLArchitecture(
        llm=Qwen2_5_VLText(
            hidden_size=2048, intermediate_size=11008, num_layers=36, num_heads=16, num_kv_heads=2,
            mrope_section=[16, 24, 24], tie_word_embeddings=True, vocab_size=151936,
        ),
        vision=release_vision(),
    ),
    "qwen2_5_vl_7b": Qwen2_5_VLArchitecture(
        llm=Qwen2_5_VLText(
            hidden_size=3584, intermediate_size=18944, num_layers=28, num_heads=28, num_kv_heads=4,
            mrope_section=[16, 24, 24], tie_word_embeddings=False, vocab_size=152064,
        ),
        vision=release_vision(),
    ),
    "qwen2_5_vl_72b": Qwen2_5_VLArchitecture(
        llm=Qwen2_5_VLText(
            hidden_size=8192, intermediate_size=29568, num_layers=80, num_heads=64, num_kv_heads=8,
            mrope_section=[16, 24, 24], tie_word_embeddings=False, vocab_size=152064,
        ),
        vision=release_vision(),
    ),
}  # fmt: skip
"""Flavor name -> architecture; conf/model/<flavor>.yaml names one."""


def architecture(flavor: str, overrides: Mapping[str, Any]) -> Qwen2_5_VLArchitecture:
    """The flavor's architecture with `model.arch` overrides applied (checked, errors name the key)."""
    if flavor not in FLAVORS:
        raise ValueError(f"model.flavor={flavor!r}: expected one of {', '.join(FLAVORS)}")
    return with_overrides(FLAVORS[flavor], overrides)


def build_hf_config(
    arch: Qwen2_5_VLArchitecture, token_ids: Mapping[str, int], tokenizer_size: int, attn_implementation: str
):
    """The transformers `Qwen2_5_VLConfig` of an architecture; special-token ids come from the tokenizer."""
    from transformers import Qwen2_5_VLConfig

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
        hidden_size=vision.hidden_size,
        intermediate_size=vision.intermediate_size,
        num_heads=vision.num_heads,
        out_hidden_size=llm.hidden_size,
        hidden_act="silu",
        patch_size=PATCH_SIZE,
        spatial_merge_size=SPATIAL_MERGE_SIZE,
        temporal_patch_size=2,
        in_channels=3,
        window_size=vision.window_size,
        fullatt_block_indexes=list(vision.fullatt_block_indexes),
        tokens_per_second=vision.tokens_per_second,
    )
    hf_config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_ids["image_pad"],
        video_token_id=token_ids["video_pad"],
        vision_start_token_id=token_ids["vision_start"],
        vision_end_token_id=token_ids["vision_end"],
        tie_word_embeddings=llm.tie_word_embeddings,
    )
    hf_config._attn_implementation = attn_implementation
    return hf_config
