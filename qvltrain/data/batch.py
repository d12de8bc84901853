"""What the model receives per micro-batch: PackedBatch, one row of packed samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch

from qvltrain.data.decode import DecodedSample
from qvltrain.vision.device import collate_patches


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
    pixels: torch.Tensor | None  # [B] uint8: images and videos resized pixels, flat, in token order, or None
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

    @property
    def num_real_tokens(self) -> int:
        return int(self.input_ids.shape[1]) - self.num_padding

    @property
    def num_loss_tokens(self) -> int:
        """Tokens whose next-token prediction is trained (labels shifted by one, as in the loss)."""
        return int((self.labels[:, 1:] != -100).sum())

    def pin_memory(self) -> PackedBatch:
        """For DataLoader(pin_memory=True): page-locked tensors copy to the GPU asynchronously."""
        pinned = {}
        for item in fields(self):
            value = getattr(self, item.name)
            pinned[item.name] = value.pin_memory() if isinstance(value, torch.Tensor) else value
        return PackedBatch(**pinned)

    def to(self, device: torch.device) -> PackedBatch:
        moved = {}
        for item in fields(self):
            value = getattr(self, item.name)
            moved[item.name] = (
                value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            )
        return PackedBatch(**moved)


Batch = PackedBatch
"""The trainer's name for a micro-batch."""


def pack_samples(samples: Sequence[DecodedSample], seq_len: int, pad_id: int) -> PackedBatch:
    """Samples (their lengths sum to <= seq_len) -> one pack of exactly seq_len tokens."""
    total = sum(len(s.input_ids) for s in samples)
    assert total <= seq_len, f"pack of {total} tokens exceeds seq_len {seq_len}"
    num_padding = seq_len - total
    lengths = [len(s.input_ids) for s in samples] + ([num_padding] if num_padding else [])
    padding_positions = torch.arange(num_padding).expand(4, num_padding)
    position_ids = torch.cat([s.position_ids for s in samples] + [padding_positions], dim=1)  # [4, L]
    cu_seqlens = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu_seqlens[1:] = torch.cumsum(torch.tensor(lengths), 0)
    pixels, grid_thw, temporal_repeat = collate_patches([p for s in samples for p in s.patches])
    has_media = grid_thw.shape[0] > 0
    return PackedBatch(
        input_ids=torch.cat([s.input_ids for s in samples] + [torch.full((num_padding,), pad_id)])[None],
        labels=torch.cat([s.labels for s in samples] + [torch.full((num_padding,), -100)])[None],
        mm_token_type_ids=torch.cat(
            [s.mm_token_type_ids for s in samples] + [torch.zeros(num_padding, dtype=torch.int32)]
        )[None],
        position_ids=position_ids.unsqueeze(1),
        cu_seqlens=cu_seqlens,
        max_seqlen=max(lengths),
        pixels=pixels if has_media else None,
        grid_thw=grid_thw if has_media else None,
        temporal_repeat=temporal_repeat if has_media else None,
        num_padding=num_padding,
        keys=[s.key for s in samples],
        sources=[s.source for s in samples],
    )


def concat_packs(packs: Sequence[PackedBatch]) -> PackedBatch:
    """Several packs as one row (micro_batch_size > 1): segments and media concatenated in order."""
    if len(packs) == 1:
        return packs[0]
    offsets = torch.cumsum(torch.tensor([0] + [p.input_ids.shape[1] for p in packs[:-1]]), 0)
    media = [p for p in packs if p.grid_thw is not None]
    return PackedBatch(
        input_ids=torch.cat([p.input_ids for p in packs], 1),
        labels=torch.cat([p.labels for p in packs], 1),
        mm_token_type_ids=torch.cat([p.mm_token_type_ids for p in packs], 1),
        position_ids=torch.cat([p.position_ids for p in packs], 2),
        cu_seqlens=torch.cat(
            [packs[0].cu_seqlens[:1]]
            + [p.cu_seqlens[1:] + int(o) for p, o in zip(packs, offsets, strict=True)]
        ),
        max_seqlen=max(p.max_seqlen for p in packs),
        pixels=torch.cat([p.pixels for p in media]) if media else None,
        grid_thw=torch.cat([p.grid_thw for p in media]) if media else None,
        temporal_repeat=torch.cat([p.temporal_repeat for p in media]) if media else None,
        num_padding=sum(p.num_padding for p in packs),
        keys=[k for p in packs for k in p.keys],
        sources=[s for p in packs for s in p.sources],
    )
