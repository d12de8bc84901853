"""The vision tower's patch embedding as one matrix multiply.

Qwen-VL towers (Qwen2-VL, Qwen2.5-VL) embed each patch row ([C=3][t=2][14][14] = 1176 values) with a
Conv3d whose kernel equals
both its stride and its whole input, so every output is one dot product per channel: the
convolution is a GEMM of the rows [P, 1176] with the weight viewed as [D, 1176]. torch's CPU Conv3d does not see
that and is several times slower (docs/performance.md). Same parameter, same shape, same
checkpoints; the results differ from the Conv3d only in summation order (~1e-6 in fp32).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class PatchwiseConv3d(nn.Conv3d):
    """A Conv3d with kernel == stride, applied to inputs exactly one kernel in size, as a GEMM."""

    def forward(self, patches: torch.Tensor) -> torch.Tensor:  # [P, C, t, 14, 14] -> [P, D, 1, 1, 1]
        if tuple(patches.shape[2:]) != tuple(self.kernel_size):
            raise ValueError(
                f"patch embedding input {tuple(patches.shape)} is not one kernel {tuple(self.kernel_size)} "
                "per row: expected the vision tower's [P, C, t, 14, 14] patches"
            )
        rows = patches.reshape(patches.shape[0], -1)  # [P, C*t*14*14]
        embedded = functional.linear(rows, self.weight.reshape(self.out_channels, -1), self.bias)
        return embedded.view(patches.shape[0], self.out_channels, 1, 1, 1)


def use_gemm_patch_embedding(visual: nn.Module) -> None:
    """Make the tower's patch-embedding Conv3d run as a GEMM, in place (parameters untouched).

    The module keeps its identity (and any ZeRO-3 hooks already on it, which gather its weight
    before forward); only its class changes, to the Conv3d subclass above.
    """
    projection = visual.patch_embed.proj
    if not isinstance(projection, nn.Conv3d):
        raise TypeError(f"expected the patch embedding to be a Conv3d, found {type(projection).__name__}")
    one_kernel_per_patch = (
        tuple(projection.kernel_size) == tuple(projection.stride)
        and tuple(projection.padding) == (0, 0, 0)
        and tuple(projection.dilation) == (1, 1, 1)
        and projection.groups == 1
    )
    if not one_kernel_per_patch:
        raise ValueError(
            f"patch embedding Conv3d (kernel {projection.kernel_size}, stride {projection.stride}) is not "
            "one kernel per patch; cannot run it as a GEMM"
        )
    projection.__class__ = PatchwiseConv3d
