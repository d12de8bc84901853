"""Next-token loss without materialising [L, vocab] logits.

Only the trained positions go through the LM head, in a fixed number of chunks, each under
activation checkpointing: a chunk's logits exist only while its loss is computed (and again in the
backward pass). With an 8192-token pack and a 152k vocabulary the plain path allocates ~5 GB of fp32
logits (and as much again for their gradient); this path allocates one chunk.

The number of LM-head calls depends only on the (fixed) pack length, never on how many tokens a
rank trains on: under ZeRO-3 every call gathers the head's weight, and ranks must gather in step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def _chunk_loss(
    lm_head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = lm_head(hidden).float()  # [n, V]
    loss_sum = F.cross_entropy(logits, targets, reduction="sum")
    num_correct = (logits.detach().argmax(-1) == targets).sum()
    return loss_sum, num_correct


def plain_token_loss(
    lm_head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference path: full logits [B, L-1, V]. (loss sum, loss tokens, correct tokens)."""
    logits = lm_head(hidden[:, :-1]).float()
    targets = labels[:, 1:]
    loss_sum = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")
    trained = targets != -100
    num_correct = ((logits.detach().argmax(-1) == targets) & trained).sum()
    return loss_sum, trained.sum(), num_correct


def chunked_token_loss(
    lm_head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor, chunk_tokens: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same result as `plain_token_loss` (hidden [B, L, H], labels [B, L] aligned with the inputs)."""
    targets = labels[:, 1:].reshape(-1)  # [B*(L-1)]
    trained_index = torch.nonzero(targets != -100).flatten()  # [N]
    trained_hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1]).index_select(0, trained_index)  # [N, H]
    trained_targets = targets.index_select(0, trained_index)  # [N]
    num_chunks = max(1, math.ceil(targets.numel() / chunk_tokens))
    loss_sum = hidden.new_zeros((), dtype=torch.float32)
    num_correct = torch.zeros((), dtype=torch.long, device=hidden.device)
    for chunk in torch.arange(trained_index.numel(), device=hidden.device).tensor_split(num_chunks):
        chunk_hidden = trained_hidden.index_select(0, chunk)
        chunk_targets = trained_targets.index_select(0, chunk)
        if torch.is_grad_enabled():
            chunk_loss, chunk_correct = checkpoint(
                _chunk_loss, lm_head, chunk_hidden, chunk_targets, use_reentrant=False
            )
        else:
            chunk_loss, chunk_correct = _chunk_loss(lm_head, chunk_hidden, chunk_targets)
        loss_sum = loss_sum + chunk_loss
        num_correct = num_correct + chunk_correct
    return loss_sum, torch.tensor(trained_index.numel(), device=hidden.device), num_correct
