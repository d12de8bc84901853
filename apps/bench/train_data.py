"""Inputs of the training benchmark: real model inputs shaped like the realistic mixture.

Samples are drawn from `apps.bench.mixture` (same seed, same sizes as the packing benchmark) and
turned into `DecodedSample`s the model can train on: random text token ids (special tokens
excluded), one visual block `<|vision_start|>` + N pads + `<|vision_end|>` per image or video with N
from its grid, random uint8 pixels of the loader's layout, labels on the text tokens, and
M-RoPE positions from `qvltrain.text.positions`. Pixel content does not change the speed; shapes do.

Both variants train on the same steps: a step is one pack planned by the packer, (b) trains on the
pack, (a) on the same samples one micro-batch of `samples_per_micro_batch` at a time, padded to the
longest, with gradient accumulation up to the same optimizer step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from apps.bench.mixture import SampleSize, realistic_mixture
from qvltrain.data.config import DataConfig
from qvltrain.data.decode import DecodedSample
from qvltrain.data.packer import Budget, PlanItem, WindowedBestFitDecreasing
from qvltrain.text.positions import sample_position_ids
from qvltrain.text.tokenizer import SpecialTokens
from qvltrain.vision.layout import TEMPORAL_PATCH_SIZE
from qvltrain.vision.patches import VisualPatches, pixels_shape

TOKEN_TYPE = {"image": 1, "video": 2}
"""mm_token_type_ids of each kind's pad tokens (0 is text)."""


@dataclass
class BenchSteps:
    """What both variants train on: optimizer steps, each a list of samples (one pack's worth)."""

    steps: list[list[DecodedSample]]
    seq_len: int
    num_skipped: int
    """Mixture samples longer than seq_len among those planned, left out (they fit no pack)."""

    @property
    def samples(self) -> list[DecodedSample]:
        return [sample for step in self.steps for sample in step]

    @property
    def num_real_tokens(self) -> int:
        return sum(len(sample.input_ids) for sample in self.samples)

    @property
    def visual_token_share(self) -> float:
        return sum(int((s.mm_token_type_ids > 0).sum()) + 2 * len(s.patches) for s in self.samples) / max(
            self.num_real_tokens, 1
        )

    @property
    def packing_efficiency(self) -> float:
        return self.num_real_tokens / (len(self.steps) * self.seq_len)


def synthetic_sample(
    size: SampleSize, key: str, special: SpecialTokens, text_ids: torch.Tensor, generator: torch.Generator
) -> DecodedSample:
    """A trainable sample with the token and patch counts of `size`; text drawn from `text_ids`."""
    num_text = size.num_tokens - size.num_visual_tokens
    # Text chunks around the visual blocks: before the first, between them and after the last.
    chunks = torch.tensor([num_text // (len(size.items) + 1)] * (len(size.items) + 1))
    chunks[-1] += num_text - int(chunks.sum())
    pieces_ids, pieces_labels, pieces_types, patches = [], [], [], []
    pad_of = {"image": special.image_pad, "video": special.video_pad}
    for index, chunk in enumerate(chunks.tolist()):
        text = text_ids[torch.randint(len(text_ids), (chunk,), generator=generator)]
        pieces_ids.append(text)
        pieces_labels.append(text)
        pieces_types.append(torch.zeros(chunk, dtype=torch.int32))
        if index == len(size.items):
            break
        item = size.items[index]
        t, h, w = item.grid_thw
        num_pads = t * h * w // 4
        block = torch.tensor([special.vision_start] + [pad_of[item.kind]] * num_pads + [special.vision_end])
        pieces_ids.append(block)
        pieces_labels.append(torch.full_like(block, -100))
        types = torch.zeros(len(block), dtype=torch.int32)
        types[1:-1] = TOKEN_TYPE[item.kind]
        pieces_types.append(types)
        # An image stores one frame (its twin is made on the device); a video both of each tube.
        temporal_repeat = TEMPORAL_PATCH_SIZE if item.kind == "image" else 1
        shape = pixels_shape(item.grid_thw, temporal_repeat)
        pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        patches.append(VisualPatches(pixels, item.grid_thw, temporal_repeat))
    token_types = torch.cat(pieces_types)
    image_grids = [p.grid_thw for p in patches if p.temporal_repeat == TEMPORAL_PATCH_SIZE]
    video_grids = [p.grid_thw for p in patches if p.temporal_repeat == 1]
    positions = sample_position_ids(token_types, image_grids or None, video_grids or None)
    input_ids = torch.cat(pieces_ids).long()
    assert len(input_ids) == size.num_tokens, (len(input_ids), size)
    labels = torch.cat(pieces_labels).long()
    labels[0] = -100  # as the renderer does: never predicted, so packs never train across samples
    return DecodedSample(
        key=key,
        source=size.source,
        input_ids=input_ids,
        labels=labels,
        mm_token_type_ids=token_types,
        position_ids=positions,
        patches=patches,
    )


def bench_steps(tokenizer, seq_len: int, num_tokens: int, seed: int = 0) -> BenchSteps:
    """ceil(num_tokens / seq_len) packs of the mixture stream as the packer makes them (= steps).

    The packer streams with its default window, as in training, so packs are as full as in a long
    run (no half-empty packs from flushing a short list). A round emits its fullest packs first
    (the largest samples open them), so the steps are packs spread evenly over everything planned,
    which keeps their samples representative of the mixture. Samples longer than seq_len are
    skipped, as the loader skips them.
    """
    special = SpecialTokens.from_tokenizer(tokenizer)
    excluded = set(tokenizer.all_special_ids) | {
        getattr(special, name) for name in special.__dataclass_fields__
    }
    text_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in excluded])
    num_packs = max(1, -(-num_tokens // seq_len))
    budget = Budget(seq_len, 4 * seq_len)  # every token's 4 patches fit: tokens are the binding budget
    num_drawn = 4 * DataConfig.pack_window
    while True:
        sizes = realistic_mixture(num_drawn, seed)
        planner = WindowedBestFitDecreasing(budget, DataConfig.pack_window)
        packs: list[list[PlanItem]] = []
        num_skipped = 0
        for index, size in enumerate(sizes):
            if size.num_tokens > seq_len or size.num_patches > budget.max_patches:
                num_skipped += 1
                continue
            planner.add(PlanItem(str(index), size.num_tokens, size.num_patches, index))
            while (pack := planner.pop()) is not None:
                packs.append(pack)
        if len(packs) >= num_packs:
            break
        num_drawn *= 2
    chosen = [packs[i * len(packs) // num_packs] for i in range(num_packs)]
    generator = torch.Generator().manual_seed(seed)
    steps = [
        [
            synthetic_sample(sizes[int(item.key)], f"mixture/{item.key}", special, text_ids, generator)
            for item in pack
        ]
        for pack in chosen
    ]
    return BenchSteps(steps, seq_len, num_skipped)


@dataclass
class PaddedBatch:
    """Baseline micro-batch: samples side by side in a [B, L] batch padded to the longest."""

    input_ids: torch.Tensor  # [B, L] int64, pad id after each sample's end
    attention_mask: torch.Tensor  # [B, L] int64, 1 on real tokens
    labels: torch.Tensor  # [B, L] int64, -100 on padding and untrained tokens
    mm_token_type_ids: torch.Tensor  # [B, L] int32
    patches: list[VisualPatches]  # images and videos of all samples, in token order

    def to(self, device: torch.device) -> PaddedBatch:
        return PaddedBatch(
            input_ids=self.input_ids.to(device, non_blocking=True),
            attention_mask=self.attention_mask.to(device, non_blocking=True),
            labels=self.labels.to(device, non_blocking=True),
            mm_token_type_ids=self.mm_token_type_ids.to(device, non_blocking=True),
            patches=[
                VisualPatches(p.pixels.to(device, non_blocking=True), p.grid_thw, p.temporal_repeat)
                for p in self.patches
            ],
        )

    @property
    def num_loss_tokens(self) -> int:
        return int((self.labels[:, 1:] != -100).sum())


def pad_samples(samples: list[DecodedSample], pad_id: int) -> PaddedBatch:
    """Right-padded batch of samples (the usual collate of a Hugging Face training script)."""
    longest = max(len(s.input_ids) for s in samples)

    def padded(tensors: list[torch.Tensor], value: int, dtype: torch.dtype) -> torch.Tensor:
        out = torch.full((len(tensors), longest), value, dtype=dtype)
        for row, tensor in enumerate(tensors):
            out[row, : len(tensor)] = tensor
        return out

    return PaddedBatch(
        input_ids=padded([s.input_ids for s in samples], pad_id, torch.long),
        attention_mask=padded([torch.ones(len(s.input_ids)) for s in samples], 0, torch.long),
        labels=padded([s.labels for s in samples], -100, torch.long),
        mm_token_type_ids=padded([s.mm_token_type_ids for s in samples], 0, torch.int32),
        patches=[p for s in samples for p in s.patches],
    )
