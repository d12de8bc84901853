"""The module DeepSpeed wraps: a PackedBatch in, summed token loss out (shared by the Qwen-VL families).

It runs the vision tower ONCE per micro-batch over images and video tubes together (one grid list,
in token order), scatters the merged features into the pad-token slots, and runs the LLM. A rank
whose micro-batch has no media runs the tower on a 2x2 dummy patch and adds its output times zero,
so every rank calls every ZeRO-3 parameter gather the same number of times (invariant 3).
Attention is qvltrain's packed attention (common/packed_attention.py): the LLM attends within each
segment of `cu_seqlens`, the tower within each image or video slice; no [L, L] mask is ever built.
The patch embedding runs as one GEMM instead of a Conv3d (common/patch_embed.py).

It expects transformers' layout of the Qwen-VL models: `model.model.visual` (with `.merger`,
`.spatial_merge_size`, `.config` with in_channels / temporal_patch_size / patch_size),
`model.model.language_model` (with `.layers`) and `model.lm_head`. A family subclasses it and implements
`tower_blocks` (the tower up to the merger, for a frozen tower) and may pass extra LLM inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from qvltrain.batch import PackedBatch
from qvltrain.model.common.loss import chunked_token_loss, plain_token_loss
from qvltrain.model.common.packed_attention import packed_llm_kwargs, use_packed_attention
from qvltrain.model.common.patch_embed import use_gemm_patch_embedding
from qvltrain.model.config import CHECKPOINTING
from qvltrain.vision.device import to_pixel_values


def enable_activation_checkpointing(model: nn.Module, which: str) -> None:
    """Recompute each decoder layer ("llm") and/or ViT block ("vision") in the backward pass."""
    if which not in CHECKPOINTING:
        raise ValueError(
            f"model.activation_checkpointing={which!r}: expected one of {', '.join(CHECKPOINTING)}"
        )
    if which == "none":
        return
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    keep = {"llm": model.model.language_model.layers, "vision": model.model.visual.blocks}
    for part, layers in keep.items():
        if which not in (part, "both"):
            for layer in layers:
                layer.gradient_checkpointing = False


class PackedTrainModule(nn.Module):
    """Packed training forward of a transformers Qwen-VL model (`.model` holds it)."""

    def __init__(
        self,
        model: nn.Module,
        frozen_vision_tower: bool = False,
        loss_chunk_tokens: int = 0,
        activation_checkpointing: str = "none",
    ):
        super().__init__()
        self.model = model
        self.frozen_vision_tower = frozen_vision_tower
        self.loss_chunk_tokens = loss_chunk_tokens
        use_packed_attention(model)
        use_gemm_patch_embedding(model.model.visual)
        enable_activation_checkpointing(model, activation_checkpointing)

    @property
    def config(self):
        return self.model.config

    def tower_blocks(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """The vision tower up to (not including) the merger: [P, patch_dim] -> [P, vision width]."""
        raise NotImplementedError(f"{type(self).__name__} must implement tower_blocks")

    def _visual_features(self, batch: PackedBatch, dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
        """Merged visual features [N, hidden] in token order, and whether they are a dummy."""
        visual = self.model.model.visual
        if not batch.pixels:
            merge = visual.spatial_merge_size
            grid_thw = torch.tensor([[1, merge, merge]], device=batch.input_ids.device)
            vision_config = visual.config
            patch_dim = (
                vision_config.in_channels * vision_config.temporal_patch_size * vision_config.patch_size**2
            )
            pixel_values = torch.zeros(merge * merge, patch_dim, device=grid_thw.device)
            is_dummy = True
        else:
            grid_thw = batch.grid_thw
            pixel_values = to_pixel_values(batch.pixels, batch.grid_thw, batch.temporal_repeat)
            is_dummy = False
        pixel_values = pixel_values.to(dtype)
        if self.frozen_vision_tower:
            # The frozen tower keeps no activations; the merger (trainable) runs with grad below.
            with torch.no_grad():
                hidden = self.tower_blocks(pixel_values, grid_thw)
            features = self.merge(hidden)
        else:
            features = visual(pixel_values, grid_thw=grid_thw).pooler_output
        return features, is_dummy

    def merge(self, hidden: torch.Tensor) -> torch.Tensor:
        """The merger over `tower_blocks`' output, in token order (a family with a reordered tower
        restores the order here)."""
        return self.model.model.visual.merger(hidden)

    def hidden_states(self, batch: PackedBatch) -> torch.Tensor:
        """Final LLM hidden states [1, L, H] of a packed micro-batch."""
        language_model = self.model.model.language_model
        inputs_embeds = language_model.embed_tokens(batch.input_ids)  # [1, L, H]
        features, is_dummy = self._visual_features(batch, inputs_embeds.dtype)
        if is_dummy:
            inputs_embeds = inputs_embeds + 0.0 * features.sum()
        else:
            visual_slots = batch.mm_token_type_ids > 0  # [1, L]
            if int(visual_slots.sum()) != features.shape[0]:
                raise ValueError(
                    f"batch {batch.keys[:4]}: {int(visual_slots.sum())} visual pad tokens but the tower made "
                    f"{features.shape[0]} features; a visual block was cut or a grid is wrong"
                )
            inputs_embeds = inputs_embeds.masked_scatter(
                visual_slots.unsqueeze(-1), features.to(inputs_embeds.dtype)
            )
        hidden = language_model(
            inputs_embeds=inputs_embeds,
            position_ids=batch.position_ids,  # [4, 1, L]
            **packed_llm_kwargs(batch.cu_seqlens, batch.max_seqlen, language_model.config.layer_types),
        ).last_hidden_state
        return hidden

    def forward(self, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sum of token losses, loss tokens, correctly predicted loss tokens) of the micro-batch.

        The caller divides the sum by the loss-token count of the whole step across ranks.
        """
        hidden = self.hidden_states(batch)
        if self.loss_chunk_tokens:
            return chunked_token_loss(self.model.lm_head, hidden, batch.labels, self.loss_chunk_tokens)
        return plain_token_loss(self.model.lm_head, hidden, batch.labels)
