"""GPU numerics (`launch/gpu_check.sh` runs these on the CUDA machine; `--dry-run` on the CPU).

1. bf16 packed == unpacked for each varlen kernel (flash-attn when installed, torch's varlen_attn):
   every sample's logits inside a pack against transformers' own unpacked bf16 forward of that
   sample. bf16 cannot match bit for bit, so the tolerance is stated against the reference's own
   rounding: with `ref_error` = max |transformers bf16 - transformers fp32| of a sample, our packed
   bf16 logits must be within 3 x ref_error (+1e-3) of transformers' bf16 logits, and within
   2 x ref_error (+1e-3) of the fp32 ones. Packing may not add more error than bf16 itself makes.
2. Chunked loss == plain loss on the device, value and gradients (fp32: 1e-5; bf16: relative error
   of the whole tensor, |a - b| / |b| < 1e-2, as bf16 sums in a different order).
"""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch
from transformers import Qwen2VLForConditionalGeneration

from qvltrain.data.batch import pack_samples
from qvltrain.data.decode import SampleDecoder
from qvltrain.model.common import packed_attention
from qvltrain.model.common.checkpoint_guards import special_token_ids
from qvltrain.model.common.loss import chunked_token_loss, plain_token_loss
from qvltrain.model.config import ModelConfig
from qvltrain.model.qwen2_vl.build import build_hf_config
from qvltrain.model.qwen2_vl.train_module import Qwen2VLTrainModule
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.vision.device import collate_patches, to_pixel_values
from tests.data.mixed_shards import KINDS, dataset, make_sample

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def samples():
    tokenizer = load_tokenizer(None)
    info = TokenizerInfo.from_tokenizer(tokenizer)
    decoder = SampleDecoder(dataset("mixed", "unused"), "chatml", info, max_length=4096)
    rng = random.Random(5)
    decoded = []
    for index, kind in enumerate(KINDS * 2):
        messages, media, sizes = make_sample(kind, rng, index)
        record = {"task": "chat", "messages": messages, "meta": {"image_sizes": sizes}}
        decoded.append(decoder({"__key__": f"{kind}{index}", "json": json.dumps(record).encode(), **media}))
    torch.manual_seed(0)
    config = build_hf_config(
        ModelConfig().architecture, special_token_ids(tokenizer), tokenizer_size=len(tokenizer)
    )
    return config, decoded, info.special.pad


def unpacked_logits(model, sample, device, dtype) -> torch.Tensor:
    """transformers' forward of one sample alone at the sample's (paper-rule) positions: [L, V] in fp32."""
    inputs = {
        "input_ids": sample.input_ids[None].to(device),
        "mm_token_type_ids": sample.mm_token_type_ids[None].to(device),
        "position_ids": sample.position_ids[1:, None].to(device),  # [3, 1, L]
    }
    for repeat, pixels_key, grid_key in (
        (2, "pixel_values", "image_grid_thw"),
        (1, "pixel_values_videos", "video_grid_thw"),
    ):
        items = [p for p in sample.patches if p.temporal_repeat == repeat]
        if items:
            rows, grid, repeats = collate_patches(items)
            pixels = to_pixel_values([r.to(device) for r in rows], grid.to(device), repeats.to(device))
            inputs[pixels_key], inputs[grid_key] = pixels.to(dtype), grid.to(device)
    return model(**inputs).logits[0].float()


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("kernel", ["flash_attn", "torch_varlen"])
def test_bf16_packed_logits_equal_transformers_unpacked(kernel, gpu_device, samples, monkeypatch) -> None:
    config, decoded, pad_id = samples
    used = []
    if gpu_device.type == "cuda":
        if kernel == "flash_attn" and packed_attention.flash_attn_varlen_func is None:
            pytest.skip("flash-attn is not installed")
        if kernel == "torch_varlen":
            if packed_attention.varlen_attn is None:
                pytest.skip("this torch has no torch.nn.attention.varlen")
            monkeypatch.setattr(packed_attention, "flash_attn_varlen_func", None)
        original = packed_attention._varlen_cuda

        def counted(*args, **kwargs):
            output = original(*args, **kwargs)
            used.append(output is not None)
            return output

        monkeypatch.setattr(packed_attention, "_varlen_cuda", counted)
    reference32 = Qwen2VLForConditionalGeneration(copy.deepcopy(config)).to(gpu_device).eval()
    reference16 = copy.deepcopy(reference32).to(torch.bfloat16)
    module = Qwen2VLTrainModule(copy.deepcopy(reference16)).eval()
    seq_len = sum(len(s.input_ids) for s in decoded) + 5
    batch = pack_samples(decoded, seq_len, pad_id).to(gpu_device)
    with torch.no_grad():
        packed = module.model.lm_head(module.hidden_states(batch))[0].float()  # [L, V]
        start = 0
        for sample in decoded:
            length = len(sample.input_ids)
            ours = packed[start : start + length]
            exact = unpacked_logits(reference32, sample, gpu_device, torch.float32)
            theirs = unpacked_logits(reference16, sample, gpu_device, torch.bfloat16)
            ref_error = max_error(theirs, exact)
            assert max_error(ours, exact) <= 2 * ref_error + 1e-3, (
                sample.key,
                max_error(ours, exact),
                ref_error,
            )
            assert max_error(ours, theirs) <= 3 * ref_error + 1e-3, (
                sample.key,
                max_error(ours, theirs),
                ref_error,
            )
            start += length
    if gpu_device.type == "cuda":
        assert used and all(used), f"the {kernel} kernel did not run for every packed attention call"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_loss_equals_plain_on_the_device(dtype, gpu_device) -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(64, 3000, bias=False).to(gpu_device, dtype)
    hidden = torch.randn(1, 700, 64, device=gpu_device, dtype=dtype, requires_grad=True)
    labels = torch.randint(0, 3000, (1, 700), device=gpu_device)
    labels[torch.rand(1, 700, device=gpu_device) < 0.3] = -100
    plain = plain_token_loss(head, hidden, labels)
    plain[0].backward()
    plain_grads = hidden.grad.clone(), head.weight.grad.clone()
    hidden.grad, head.weight.grad = None, None
    chunked = chunked_token_loss(head, hidden, labels, 128)
    chunked[0].backward()
    if dtype == torch.float32:
        close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # noqa: E731
    else:  # bf16 sums in another order: compare as a whole, relative to the tensor's norm

        def close(a, b):
            a, b = a.float(), b.float()
            assert float((a - b).norm() / b.norm().clamp_min(1e-12)) < 1e-2

    close(chunked[0], plain[0])
    assert int(chunked[1]) == int(plain[1])
    close(hidden.grad, plain_grads[0])
    close(head.weight.grad, plain_grads[1])
