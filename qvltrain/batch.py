"""PackedBatch: what the model receives per micro-batch, one row of packed samples.

A leaf (torch only): the data pipeline builds it (qvltrain.data.batch) and the model and trainer
read it, without either importing the other (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class PackedBatch:
    """Samples packed back to back into one row of L tokens (L = micro_batch_size * seq_len).

    Every sample is one segment of `cu_seqlens`; the padding at the tail of each pack is its own
    segment (labels -100), so attention never crosses samples and L is fixed. Pixels travel as the
    resized uint8 pixels; the device cuts them into patch rows and normalises them
    (qvltrain.vision.device.to_pixel_values).
    """

    input_ids: torch.Tensor  # [1, L] int64
    labels: torch.Tensor  # [1, L] int64, -100 where not trained (aligned with input_ids)
    mm_token_type_ids: torch.Tensor  # [1, L] int32: 0 text, 1 image, 2 video
    position_ids: torch.Tensor  # [4, 1, L] int64: row 0 text positions restarting per segment, 1-3 M-RoPE
    cu_seqlens: torch.Tensor  # [S+1] int32: segment boundaries (samples and tail padding)
    pixels: list[torch.Tensor] | None
    """uint8 pixels of each image and video in token order (layouts: qvltrain.vision.patches), or None."""
    grid_thw: torch.Tensor | None  # [I, 3] int64, one row per image or video, in token order
    temporal_repeat: torch.Tensor | None  # [I] int64: 2 for an image (frame stored once), 1 for video
    max_seqlen: int = 0
    """Longest segment (kernels want it as a host int; kept here so the device never syncs for it)."""
    num_padding: int = 0
    """Padding tokens (the tail segments)."""
    keys: list[str] = field(default_factory=list)
    """Sample keys, for logs and skip reports."""
    sources: list[str] = field(default_factory=list)
    """Dataset name of each sample."""
    second_per_grid_ts: torch.Tensor | None = None
    """[I] float32, per image or video in token order: seconds one tube spans (2 / sampled fps) for a
    video, 0 for an image; None without media. The time scale of Qwen2.5-VL's positions (already in
    `position_ids`); carried for references and checks (transformers' `second_per_grid_ts`)."""

    @property
    def num_real_tokens(self) -> int:
        return int(self.input_ids.shape[1]) - self.num_padding

    @property
    def num_loss_tokens(self) -> int:
        """Tokens whose next-token prediction is trained (labels shifted by one, as in the loss)."""
        return int((self.labels[:, 1:] != -100).sum())

    def _map_tensors(self, function) -> PackedBatch:
        mapped = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, torch.Tensor):
                value = function(value)
            elif item.name == "pixels" and value is not None:
                value = [function(tensor) for tensor in value]
            mapped[item.name] = value
        return PackedBatch(**mapped)

    def pin_memory(self) -> PackedBatch:
        """For DataLoader(pin_memory=True): page-locked tensors copy to the GPU asynchronously."""
        return self._map_tensors(lambda tensor: tensor.pin_memory())

    def to(self, device: torch.device) -> PackedBatch:
        return self._map_tensors(lambda tensor: tensor.to(device, non_blocking=True))
