"""ModelConfig: which family, which flavor of it, and how to train it (conf/model/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qvltrain.model.family import DEFAULT_FAMILY, get_family

CHECKPOINTING = ("none", "llm", "vision", "both")


@dataclass
class ModelConfig:
    """What to build: a family's named flavor (plus overrides), or the weights of a local HF folder.

    After validation `architecture` holds the family's typed architecture (flavor + `arch`).
    """

    family: str = DEFAULT_FAMILY
    """Model family (qvltrain/model/family.py FAMILIES), e.g. qwen2_vl; docs/model-families.md."""
    flavor: str = "tiny"
    """A flavor of the family (its FLAVORS); ignored for the architecture when `init_from` is set."""
    arch: dict[str, Any] = field(default_factory=dict)
    """Overrides of the flavor's architecture, nested as the family's config (e.g. {llm: {num_layers: 4}})."""
    init_from: str | None = None
    """Local Hugging Face folder (config.json + safetensors) to start from, e.g. the previous stage's export."""
    tokenizer: str | None = None
    """Local tokenizer folder; None uses the tiny tokenizer bundled in qvltrain/assets."""
    attn_implementation: str = "sdpa"
    """Attention kernel for unpacked batches: sdpa or eager (packed batches use qvltrain's own)."""
    position_rule: str | None = None
    """Where text resumes after an image/video block, one of the family's rules (None: its default;
    Qwen2-VL: "paper" or "transformers", docs/formats.md). Recorded in checkpoints and exports."""
    loss_chunk_tokens: int = 2048
    """LM-head + cross-entropy in chunks over trained positions only (0: plain full logits)."""
    activation_checkpointing: str = "none"
    """Recompute activations in backward: none, llm (each decoder layer), vision (each ViT block), both."""

    def __post_init__(self) -> None:
        family = get_family(self.family)
        if self.flavor not in family.flavors:
            raise ValueError(
                f"model.flavor={self.flavor!r}: expected one of {', '.join(family.flavors)} (family {self.family})"
            )
        if self.position_rule is None:
            self.position_rule = family.position_rules[0]
        if self.position_rule not in family.position_rules:
            raise ValueError(
                f"model.position_rule={self.position_rule!r}: expected one of "
                f"{', '.join(family.position_rules)} (family {self.family})"
            )
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError(
                f"model.attn_implementation={self.attn_implementation!r}: expected 'sdpa' or 'eager'"
            )
        if self.activation_checkpointing not in CHECKPOINTING:
            raise ValueError(
                f"model.activation_checkpointing={self.activation_checkpointing!r}: expected one of "
                f"{', '.join(CHECKPOINTING)}"
            )
        if self.loss_chunk_tokens < 0:
            raise ValueError(f"model.loss_chunk_tokens={self.loss_chunk_tokens}: must be >= 0")
        self.architecture = family.architecture(self.flavor, dict(self.arch or {}))
