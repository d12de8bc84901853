"""Packed attention: samples side by side in one row never see each other (invariant 1).

transformers' `sdpa` path does not isolate packed samples of the LLM given `[4, 1, L]` position ids
(it needs a dense [L, L] mask for that), so we register our own attention function:

- with `cu_seq_lens_q` in its kwargs it attends within each segment only, causal for the LLM and
  bidirectional for the vision tower: on CUDA with `flash_attn_varlen_func` when flash-attn is
  installed, else `torch.nn.attention.varlen.varlen_attn` (half precision), else, and always on the
  CPU, an exact loop of SDPA calls, one per segment;
- without it (unpacked calls, e.g. generation or a reference forward) it is transformers' SDPA.

Two names are registered. The vision tower hands `cu_seqlens` to its attention function only when
the implementation's name contains "flash" (`is_flash_attention_requested`); otherwise it splits the
images itself and calls the function once per image. So the vision config gets `VISION_ATTENTION`
and the LLM `LLM_ATTENTION` (the LLM receives cu_seqlens from the family's train module instead).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

LLM_ATTENTION = "qvl_packed"
VISION_ATTENTION = "qvl_packed_flash_varlen"

try:  # optional dependency (pyproject extra `gpu`)
    from flash_attn import flash_attn_varlen_func
except ImportError:
    flash_attn_varlen_func = None
try:
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # torch < 2.10
    varlen_attn = None


def _equal_length_runs(lengths: list[int]) -> list[tuple[int, int]]:
    """Consecutive segments of equal length as (count, length): a video's temporal slices are one run."""
    runs: list[tuple[int, int]] = []
    for length in lengths:
        if runs and runs[-1][1] == length:
            runs[-1] = (runs[-1][0] + 1, length)
        else:
            runs.append((1, length))
    return runs


def _per_segment(query, key, value, cu_seqlens, causal: bool, scaling, dropout: float) -> torch.Tensor:
    """Exact reference path: SDPA per segment. [1, H, L, D] in, [L, H, D] out.

    Two things keep it fast on the CPU (3-4x on packs of many segments, docs/benchmarks.md "Training
    step"): the inputs are cut with one `split` per tensor, whose backward is a single cat, where
    slicing per segment made each segment's backward write a zero-filled full [1, H, L, D] gradient
    (S fills, copies and adds of the whole tensor); and a run of equal-length segments (the temporal
    slices of a video, same-size images) is one batched SDPA call. Each segment still attends to
    itself only, with the same kernel (outputs and gradients were bit-identical to the per-segment
    loop in that measurement).
    """
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    num_heads, head_dim = query.shape[1], query.shape[3]
    runs = _equal_length_runs((cu_seqlens[1:] - cu_seqlens[:-1]).tolist())
    sizes = [count * length for count, length in runs]
    outputs = []
    pieces = (query[0].split(sizes, dim=1), key[0].split(sizes, dim=1), value[0].split(sizes, dim=1))
    for (count, length), *qkv in zip(runs, *pieces, strict=True):
        if length == 0:
            continue
        # [H, count * length, D] -> [count, H, length, D]: a batch of `count` segments.
        q, k, v = (tensor.unflatten(1, (count, length)).transpose(0, 1) for tensor in qkv)
        output = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal, scale=scaling)
        outputs.append(output.transpose(1, 2).reshape(count * length, num_heads, head_dim))
    return torch.cat(outputs, dim=0)


def _varlen_cuda(query, key, value, cu_seqlens, max_seqlen: int, causal: bool, scaling, dropout: float):
    """[1, H, L, D] in, [L, H, D] out, or None when no varlen kernel applies."""
    half = query.dtype in (torch.float16, torch.bfloat16)
    q, k, v = (tensor[0].transpose(0, 1) for tensor in (query, key, value))  # [L, H, D]
    cu_seqlens = cu_seqlens.to(device=query.device, dtype=torch.int32)
    if flash_attn_varlen_func is not None and half:
        return flash_attn_varlen_func(
            q, k, v, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen,
            dropout_p=dropout, softmax_scale=scaling, causal=causal,
        )  # fmt: skip
    if varlen_attn is not None and half and dropout == 0.0:
        return varlen_attn(
            q.contiguous(), k.contiguous(), v.contiguous(), cu_seqlens, cu_seqlens, max_seqlen, max_seqlen,
            scale=scaling, window_size=(-1, 0) if causal else (-1, -1), enable_gqa=k.shape[1] != q.shape[1],
        )  # fmt: skip
    return None


def packed_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,  # [B, H, L, D]
    key: torch.Tensor,  # [B, H_kv, L, D]
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention interface: returns ([B, L, H, D], None)."""
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    if query.shape[0] != 1 or attention_mask is not None:
        raise ValueError("packed attention takes one packed row ([1, L]) and no attention mask")
    if (
        cu_seq_lens_k is not None
        and cu_seq_lens_k is not cu_seq_lens_q
        and not torch.equal(cu_seq_lens_k, cu_seq_lens_q)
    ):
        raise ValueError("packed attention: cu_seq_lens_k must equal cu_seq_lens_q (self-attention)")
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    output = None
    if query.is_cuda:
        max_seqlen = max_length_q or int((cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).max())
        output = _varlen_cuda(query, key, value, cu_seq_lens_q, max_seqlen, causal, scaling, dropout)
    if output is None:
        output = _per_segment(query, key, value, cu_seq_lens_q, causal, scaling, dropout)
    return output.unsqueeze(0), None


def register_packed_attention() -> None:
    """Register both names with transformers (idempotent)."""
    for name in (LLM_ATTENTION, VISION_ATTENTION):
        AttentionInterface.register(name, packed_attention_forward)
        # Unpacked calls build the same masks as sdpa does.
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, sdpa_mask)


def use_packed_attention(model) -> None:
    """Switch a transformers VLM to packed attention: its LLM (`model.model.language_model`, config
    `text_config`) and its vision tower (`model.model.visual`, config `vision_config`)."""
    register_packed_attention()
    text_config = model.model.language_model.config
    vision_config = model.model.visual.config
    model.config._attn_implementation = {
        "": LLM_ATTENTION,
        "text_config": LLM_ATTENTION,
        "vision_config": VISION_ATTENTION,
    }
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is text_config or config is model.config.text_config:
            config._attn_implementation = LLM_ATTENTION
        elif config is vision_config or config is model.config.vision_config:
            config._attn_implementation = VISION_ATTENTION


def packed_llm_kwargs(cu_seqlens: torch.Tensor, max_seqlen: int, layer_types) -> dict:
    """Keyword arguments that make the LLM attend per segment and skip building any [L, L] mask."""
    return {
        # A prepared mask mapping: transformers then builds no mask (our function needs none).
        "attention_mask": {layer_type: None for layer_type in set(layer_types)},
        "cu_seq_lens_q": cu_seqlens,
        "cu_seq_lens_k": cu_seqlens,
        "max_length_q": max_seqlen,
        "max_length_k": max_seqlen,
    }
