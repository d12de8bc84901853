"""What the model receives per micro-batch."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Batch:
    """A padded micro-batch of B samples (the packer's PackedBatch has the same visual fields).

    Pixels travel as uint8 patch rows and are normalised on the device (qvltrain.vision.device).
    """

    input_ids: torch.Tensor  # [B, L] int64
    labels: torch.Tensor  # [B, L] int64, -100 where not trained (aligned with input_ids)
    attention_mask: torch.Tensor  # [B, L] int64, 0 on padding
    mm_token_type_ids: torch.Tensor  # [B, L] int32: 0 text, 1 image, 2 video
    position_ids: torch.Tensor  # [3, B, L] int64: M-RoPE rows t, h, w (padding continues the text row)
    pixel_rows: torch.Tensor | None  # [P, row bytes] uint8, images and video tubes concatenated
    grid_thw: torch.Tensor | None  # [I, 3] int64, one row per image or video, in token order
    temporal_repeat: torch.Tensor | None  # [I] int64: 2 for an image (frame stored once), 1 for video
    keys: list[str] = field(default_factory=list)
    """Sample keys, for logs and skip reports."""

    @property
    def num_real_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def num_loss_tokens(self) -> int:
        """Tokens whose next-token prediction is trained (labels shifted by one, as in the loss)."""
        return int((self.labels[:, 1:] != -100).sum())

    def to(self, device: torch.device) -> Batch:
        moved = {}
        for item in fields(self):
            value = getattr(self, item.name)
            moved[item.name] = (
                value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            )
        return Batch(**moved)
