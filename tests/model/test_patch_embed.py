"""The patch embedding as a GEMM against transformers' Conv3d (fp32, CPU): outputs and weight gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers.models.qwen2_vl.modeling_qwen2_vl import PatchEmbed

from qvltrain.model.common.patch_embed import PatchwiseConv3d, use_gemm_patch_embedding


class _Tower(nn.Module):
    def __init__(self, embed_dim: int):
        super().__init__()
        self.patch_embed = PatchEmbed(
            patch_size=14, temporal_patch_size=2, in_channels=3, embed_dim=embed_dim
        )


@pytest.mark.parametrize("embed_dim", [64, 1280])
def test_gemm_patch_embedding_equals_the_conv3d(embed_dim):
    torch.manual_seed(0)
    reference = _Tower(embed_dim)
    ours = copy.deepcopy(reference)
    use_gemm_patch_embedding(ours)
    assert isinstance(ours.patch_embed.proj, PatchwiseConv3d)
    assert list(ours.state_dict()) == list(reference.state_dict())
    pixel_values = torch.randn(300, 1176)  # [P, 1176]
    expected, actual = reference.patch_embed(pixel_values), ours.patch_embed(pixel_values)
    assert actual.shape == expected.shape == (300, embed_dim)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    upstream = torch.randn_like(expected)
    (expected * upstream).sum().backward()
    (actual * upstream).sum().backward()
    torch.testing.assert_close(
        ours.patch_embed.proj.weight.grad, reference.patch_embed.proj.weight.grad, rtol=1e-4, atol=1e-4
    )


def test_a_conv3d_that_is_not_one_kernel_per_patch_is_refused():
    tower = _Tower(8)
    tower.patch_embed.proj = nn.Conv3d(3, 8, kernel_size=(2, 14, 14), stride=(1, 7, 7))
    with pytest.raises(ValueError, match="not one kernel per patch"):
        use_gemm_patch_embedding(tower)
    gemm = _Tower(8)
    use_gemm_patch_embedding(gemm)
    with pytest.raises(ValueError, match="not one kernel"):
        gemm.patch_embed.proj(torch.randn(2, 3, 2, 28, 28))
