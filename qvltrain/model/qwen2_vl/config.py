"""Qwen2-VL's architecture config and its flavors (tiny / 2B / 7B), in code.

The real flavors carry the Qwen2-VL releases' config.json values; the tiny flavor keeps every
structural feature (M-RoPE sections, GQA, 2x2 merger, Conv3d patch embed) at dimensions that train
on a laptop CPU in well under a second per step. A YAML names a flavor (`model.flavor`) and may
override single fields (`model.arch`, e.g. `{llm: {num_layers: 1}}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qvltrain.model.common.overrides import with_overrides


@dataclass
class Qwen2VLText:
    """The language model (Qwen2 decoder with M-RoPE)."""

    hidden_size: int = 64
    """LLM hidden size (also the vision tower's output size)."""
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
    max_position_embeddings: int = 32768
    """Longest position the LLM is configured for."""
    tie_word_embeddings: bool = True
    """Share the input embedding with the LM head (2B: yes, 7B: no)."""
    vocab_size: int | None = None
    """Embedding rows; None sizes them to the tokenizer (the releases pad: 2B 151936, 7B 152064)."""

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
class Qwen2VLVision:
    """The vision tower (ViT with 2D RoPE, LayerNorm + quick-GELU MLP) and its 2x2 merger."""

    depth: int = 2
    """Number of ViT blocks."""
    embed_dim: int = 64
    """ViT width."""
    num_heads: int = 4
    """ViT attention heads."""
    mlp_ratio: int = 4
    """ViT MLP width / ViT width."""

    def __post_init__(self) -> None:
        for name in ("depth", "embed_dim", "num_heads", "mlp_ratio"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model.arch.vision.{name}={getattr(self, name)}: must be positive")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"model.arch.vision.embed_dim={self.embed_dim} is not divisible by "
                f"model.arch.vision.num_heads={self.num_heads}"
            )


@dataclass
class Qwen2VLArchitecture:
    """A Qwen2-VL model's shape: the language model and the vision tower."""

    llm: Qwen2VLText = field(default_factory=Qwen2VLText)
    """The language model."""
    vision: Qwen2VLVision = field(default_factory=Qwen2VLVision)
    """The vision tower."""

    @property
    def hidden_size(self) -> int:
        return self.llm.hidden_size


RELEASE_VISION = Qwen2VLVision(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4)
"""The vision tower of every Qwen2-VL release (675M parameters)."""

FLAVORS: dict[str, Qwen2VLArchitecture] = {
    # With 8 rotary pairs, the release's rope_theta 1e6 leaves the w row (the 3 slowest pairs)
    # turning by < 2e-4 rad per column: a tiny model could not tell image columns apart, and
    # grounding stays at 0%. 10 turns the h row 0.32-0.56 and the w row 0.13-0.24 rad per merged
    # token; the demo's texts are short.
    "tiny": Qwen2VLArchitecture(llm=Qwen2VLText(rope_theta=10.0), vision=Qwen2VLVision()),
    "qwen2vl_2b": Qwen2VLArchitecture(
        llm=Qwen2VLText(
            hidden_size=1536,
            intermediate_size=8960,
            num_layers=28,
            num_heads=12,
            num_kv_heads=2,
            mrope_section=[16, 24, 24],
            tie_word_embeddings=True,
            vocab_size=151936,
        ),
        vision=RELEASE_VISION,
    ),  # fmt: skip
    "qwen2vl_7b": Qwen2VLArchitecture(
        llm=Qwen2VLText(
            hidden_size=3584,
            intermediate_size=18944,
            num_layers=28,
            num_heads=28,
            num_kv_heads=4,
            mrope_section=[16, 24, 24],
            tie_word_embeddings=False,
            vocab_size=152064,
        ),
        vision=RELEASE_VISION,
    ),  # fmt: skip
}
"""Flavor name -> architecture; conf/model/<flavor>.yaml names one."""


def architecture(flavor: str, overrides: Mapping[str, Any]) -> Qwen2VLArchitecture:
    """The flavor's architecture with `model.arch` overrides applied (checked, errors name the key)."""
    if flavor not in FLAVORS:
        raise ValueError(f"model.flavor={flavor!r}: expected one of {', '.join(FLAVORS)}")
    return with_overrides(FLAVORS[flavor], overrides)
