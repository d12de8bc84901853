"""RenderedSample: one sample as the model trains on it (before packing)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

IGNORE_INDEX = -100


@dataclass(frozen=True)
class RenderedSample:
    """Token ids, labels, modality types and positions of one sample, plus what the packer needs.

    Labels are aligned with input_ids (the transformers convention: the loss shifts them by one);
    labels[0] is always IGNORE_INDEX so no sample is trained on predicting its first token from the
    previous sample of a pack.
    """

    input_ids: torch.Tensor  # [L] int64
    labels: torch.Tensor  # [L] int64, IGNORE_INDEX where untrained
    mm_token_type_ids: torch.Tensor  # [L] int64: 0 text, 1 image pad, 2 video pad
    position_ids: torch.Tensor  # [4, L] int64: row 0 text positions 0..L-1, rows 1-3 M-RoPE (t, h, w)
    visual_kinds: tuple[str, ...]  # "image" | "video", one per visual item in order
    visual_grids: tuple[tuple[int, int, int], ...]  # grid_thw before merging, one per visual item
    visual_spans: tuple[tuple[int, int], ...]  # [start, end) of each block, vision_start..vision_end
    turn_ends: tuple[int, ...]  # token index after each turn: the legal truncation points
    num_clipped_boxes: int = 0  # boxes that reached outside their image and were clipped
    num_truncated_tokens: int = 0  # tokens dropped by truncation at a turn boundary

    def __len__(self) -> int:
        return int(self.input_ids.numel())

    @property
    def num_loss_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())

    @property
    def num_visual_tokens(self) -> int:
        """Tokens inside visual blocks, vision_start and vision_end included."""
        return sum(end - start for start, end in self.visual_spans)

    @property
    def image_grid_thw(self) -> torch.Tensor:  # [I, 3]
        grids = [
            grid for kind, grid in zip(self.visual_kinds, self.visual_grids, strict=True) if kind == "image"
        ]
        return torch.tensor(grids, dtype=torch.long).reshape(-1, 3)

    @property
    def video_grid_thw(self) -> torch.Tensor:  # [V, 3]
        grids = [
            grid for kind, grid in zip(self.visual_kinds, self.visual_grids, strict=True) if kind == "video"
        ]
        return torch.tensor(grids, dtype=torch.long).reshape(-1, 3)

    def prefix(self, length: int) -> RenderedSample:
        """The first `length` tokens; every visual block must lie wholly inside the prefix."""
        assert all(end <= length for _, end in self.visual_spans), "a prefix must never cut a visual block"
        assert length in self.turn_ends, "a prefix must end at a turn boundary"
        return replace(
            self,
            input_ids=self.input_ids[:length],
            labels=self.labels[:length],
            mm_token_type_ids=self.mm_token_type_ids[:length],
            # Positions of a causal prefix do not depend on what follows, so slicing is exact.
            position_ids=self.position_ids[:, :length],
            turn_ends=tuple(end for end in self.turn_ends if end <= length),
            num_truncated_tokens=self.num_truncated_tokens + len(self) - length,
        )
