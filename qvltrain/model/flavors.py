"""Model flavors (tiny / 2B / 7B) and how to build a transformers Qwen2-VL from one.

The numbers of the real flavors are the Qwen2-VL releases' config.json values; the tiny
flavor keeps every structural feature (M-RoPE sections, GQA, 2x2 merger, Conv3d patch embed) at
dimensions that train on a laptop CPU in well under a second per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qvltrain.text.positions import POSITION_RULES

FLAVORS = ("tiny", "qwen2vl_2b", "qwen2vl_7b")


@dataclass
class ModelConfig:
    """What to build: a named flavor, or the weights of a local Hugging Face folder."""

    flavor: str = "tiny"
    """One of FLAVORS; ignored for the architecture when `init_from` is set (the folder's config wins)."""
    init_from: str | None = None
    """Local Hugging Face folder (config.json + safetensors) to start from, e.g. the previous stage's export."""
    tokenizer: str | None = None
    """Local tokenizer folder; None uses the tiny tokenizer bundled in qvltrain/assets."""
    attn_implementation: str = "sdpa"
    """Attention kernel for unpacked batches: sdpa or eager (packed batches use qvltrain's own)."""
    vocab_size: int | None = None
    """Embedding rows; None sizes them to the tokenizer (the releases pad: 2B 151936, 7B 152064)."""
    position_rule: str = "paper"
    """Where text resumes after an image/video block: "paper" (largest position + 1, as the released
    weights were trained) or "transformers" (transformers >= 5.3 `get_rope_index`). Recorded in the
    checkpoint and export as `qvltrain_position_rule`; see docs/formats.md."""
    loss_chunk_tokens: int = 2048
    """LM-head + cross-entropy in chunks over trained positions only (0: plain full logits)."""
    activation_checkpointing: str = "none"
    """Recompute activations in backward: none, llm (each decoder layer), vision (each ViT block), both."""
    llm_hidden_size: int = 64
    """LLM hidden size (also the vision tower's output size)."""
    llm_intermediate_size: int = 128
    """LLM MLP width."""
    llm_num_layers: int = 2
    """Number of decoder layers."""
    llm_num_heads: int = 4
    """Query heads of the LLM."""
    llm_num_kv_heads: int = 2
    """Key/value heads of the LLM (grouped-query attention)."""
    mrope_section: list[int] = field(default_factory=lambda: [2, 3, 3])
    """Rotary pairs given to the t, h, w position rows; must sum to head_dim / 2."""
    rope_theta: float = 1_000_000.0
    """Base of the LLM's rotary frequencies."""
    max_position_embeddings: int = 32768
    """Longest position the LLM is configured for."""
    tie_word_embeddings: bool = True
    """Share the input embedding with the LM head (2B: yes, 7B: no)."""
    vision_depth: int = 2
    """Number of ViT blocks."""
    vision_embed_dim: int = 64
    """ViT width."""
    vision_num_heads: int = 4
    """ViT attention heads."""
    vision_mlp_ratio: int = 4
    """ViT MLP width / ViT width."""

    def __post_init__(self) -> None:
        if self.flavor not in FLAVORS:
            raise ValueError(f"model.flavor={self.flavor!r}: expected one of {', '.join(FLAVORS)}")
        if self.position_rule not in POSITION_RULES:
            raise ValueError(
                f"model.position_rule={self.position_rule!r}: expected one of {', '.join(POSITION_RULES)}"
            )
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError(
                f"model.attn_implementation={self.attn_implementation!r}: expected 'sdpa' or 'eager'"
            )
        for name in (
            "llm_hidden_size",
            "llm_num_layers",
            "llm_num_heads",
            "llm_num_kv_heads",
            "vision_depth",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"model.{name}={getattr(self, name)}: must be positive")
        if self.llm_hidden_size % self.llm_num_heads:
            raise ValueError(
                f"model.llm_hidden_size={self.llm_hidden_size} is not divisible by "
                f"model.llm_num_heads={self.llm_num_heads}"
            )
        if self.llm_num_heads % self.llm_num_kv_heads:
            raise ValueError(
                f"model.llm_num_heads={self.llm_num_heads} is not a multiple of "
                f"model.llm_num_kv_heads={self.llm_num_kv_heads}"
            )
        head_dim = self.llm_hidden_size // self.llm_num_heads
        if sum(self.mrope_section) * 2 != head_dim:
            raise ValueError(
                f"model.mrope_section={list(self.mrope_section)} sums to {sum(self.mrope_section)}; "
                f"it must sum to head_dim/2 = {head_dim // 2}"
            )
        if self.vision_embed_dim % self.vision_num_heads:
            raise ValueError(
                f"model.vision_embed_dim={self.vision_embed_dim} is not divisible by "
                f"model.vision_num_heads={self.vision_num_heads}"
            )


def build_hf_config(config: ModelConfig, token_ids: dict[str, int], tokenizer_size: int):
    """The transformers `Qwen2VLConfig` for a flavor; special-token ids come from the tokenizer."""
    from transformers import Qwen2VLConfig

    text_config = dict(
        vocab_size=config.vocab_size or tokenizer_size,
        hidden_size=config.llm_hidden_size,
        intermediate_size=config.llm_intermediate_size,
        num_hidden_layers=config.llm_num_layers,
        num_attention_heads=config.llm_num_heads,
        num_key_value_heads=config.llm_num_kv_heads,
        hidden_act="silu",
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": config.rope_theta,
            "mrope_section": list(config.mrope_section),
        },
        bos_token_id=token_ids["pad"],
        eos_token_id=token_ids["eos"],
        pad_token_id=token_ids["pad"],
        tie_word_embeddings=config.tie_word_embeddings,
    )
    vision_config = dict(
        depth=config.vision_depth,
        embed_dim=config.vision_embed_dim,
        hidden_size=config.llm_hidden_size,
        num_heads=config.vision_num_heads,
        mlp_ratio=config.vision_mlp_ratio,
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
        tie_word_embeddings=config.tie_word_embeddings,
    )
    hf_config._attn_implementation = config.attn_implementation
    return hf_config
