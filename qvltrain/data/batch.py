"""Packing decoded samples into PackedBatch rows: PackAssembler, pack_samples, concat_packs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from qvltrain.batch import PackedBatch
from qvltrain.data.decode import DecodedSample
from qvltrain.vision.device import collate_patches
from qvltrain.vision.patches import VisualPatches


class PackAssembler:
    """Builds one pack sample by sample: tokens copied into tensors preallocated at seq_len, pixels kept
    as the decoder made them (one tensor per image or video, never concatenated on the host:
    the device step reads each item anyway, so a host copy would only cost memory bandwidth)."""

    def __init__(self, seq_len: int, pad_id: int):
        self.seq_len = seq_len
        self.input_ids = torch.full((seq_len,), pad_id, dtype=torch.long)
        self.labels = torch.full((seq_len,), -100, dtype=torch.long)
        self.mm_token_type_ids = torch.zeros(seq_len, dtype=torch.int32)
        self.position_ids = torch.empty(4, seq_len, dtype=torch.long)
        self.num_tokens = 0
        self.num_patches = 0
        self.lengths: list[int] = []
        self.keys: list[str] = []
        self.sources: list[str] = []
        self.patches: list[VisualPatches] = []

    def fits(self, sample: DecodedSample, max_patches: int) -> bool:
        return (
            self.num_tokens + len(sample.input_ids) <= self.seq_len
            and self.num_patches + sample.num_patches <= max_patches
        )

    def add(self, sample: DecodedSample) -> None:
        length = len(sample.input_ids)
        start, end = self.num_tokens, self.num_tokens + length
        assert end <= self.seq_len, f"pack of {end} tokens exceeds seq_len {self.seq_len}"
        self.input_ids[start:end] = sample.input_ids
        self.labels[start:end] = sample.labels
        self.mm_token_type_ids[start:end] = sample.mm_token_type_ids
        self.position_ids[:, start:end] = sample.position_ids
        self.patches.extend(sample.patches)
        self.num_tokens, self.num_patches = end, self.num_patches + sample.num_patches
        self.lengths.append(length)
        self.keys.append(sample.key)
        self.sources.append(sample.source)

    def finish(self) -> PackedBatch:
        """The pack of exactly seq_len tokens: the tail is padding, its own segment."""
        num_padding = self.seq_len - self.num_tokens
        self.position_ids[:, self.num_tokens :] = torch.arange(num_padding)
        lengths = self.lengths + ([num_padding] if num_padding else [])
        cu_seqlens = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        cu_seqlens[1:] = torch.cumsum(torch.tensor(lengths), 0)
        pixels, grid_thw, temporal_repeat = collate_patches(self.patches)
        has_media = bool(self.patches)
        return PackedBatch(
            input_ids=self.input_ids[None],
            labels=self.labels[None],
            mm_token_type_ids=self.mm_token_type_ids[None],
            position_ids=self.position_ids.unsqueeze(1),
            cu_seqlens=cu_seqlens,
            max_seqlen=max(lengths),
            pixels=pixels if has_media else None,
            grid_thw=grid_thw if has_media else None,
            temporal_repeat=temporal_repeat if has_media else None,
            num_padding=num_padding,
            keys=self.keys,
            sources=self.sources,
            second_per_grid_ts=(
                torch.tensor([p.second_per_grid_t or 0.0 for p in self.patches], dtype=torch.float32)
                if has_media
                else None
            ),
        )


def pack_samples(samples: Sequence[DecodedSample], seq_len: int, pad_id: int) -> PackedBatch:
    """Samples (their lengths sum to <= seq_len) -> one pack of exactly seq_len tokens."""
    assembler = PackAssembler(seq_len, pad_id)
    for sample in samples:
        assembler.add(sample)
    return assembler.finish()


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
        pixels=[tensor for p in media for tensor in p.pixels] if media else None,
        grid_thw=torch.cat([p.grid_thw for p in media]) if media else None,
        temporal_repeat=torch.cat([p.temporal_repeat for p in media]) if media else None,
        num_padding=sum(p.num_padding for p in packs),
        keys=[k for p in packs for k in p.keys],
        sources=[s for p in packs for s in p.sources],
        second_per_grid_ts=torch.cat([p.second_per_grid_ts for p in media]) if media else None,
    )
