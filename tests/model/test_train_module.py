"""Our training forward on a real pack against transformers' own forward of each sample (fp32, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import Qwen2VLForConditionalGeneration

from qvltrain.batch import PackedBatch
from qvltrain.data.batch import pack_samples
from qvltrain.data.config import DatasetConfig
from qvltrain.data.decode import DecodedSample, SampleDecoder
from qvltrain.data.reader import iter_samples
from qvltrain.data.shards import expand_shards
from qvltrain.model.common.checkpoint_guards import special_token_ids
from qvltrain.model.config import ModelConfig
from qvltrain.model.qwen2_vl.build import build_hf_config
from qvltrain.model.qwen2_vl.train_module import Qwen2VLTrainModule
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer
from qvltrain.vision.budgets import ImageBudget
from qvltrain.vision.device import collate_patches, to_pixel_values

SEQ_LEN = 256


def tiny(tokenizer) -> Qwen2VLForConditionalGeneration:
    torch.manual_seed(0)
    config = build_hf_config(
        ModelConfig().architecture, special_token_ids(tokenizer), tokenizer_size=len(tokenizer)
    )
    return Qwen2VLForConditionalGeneration(config).eval()


def shard_samples(shards: Path, tokenizer, count: int) -> list[DecodedSample]:
    dataset = DatasetConfig(name="shapes", shards=str(shards), image_budget=ImageBudget(3136, 50176))
    decoder = SampleDecoder(dataset, "plain", TokenizerInfo.from_tokenizer(tokenizer), SEQ_LEN)
    samples = []
    for raw in iter_samples(expand_shards(str(shards))[0]):
        samples.append(decoder({"__key__": raw.key, "__url__": raw.url, **raw.members}))
        if len(samples) == count:
            return samples
    raise AssertionError("not enough samples")


def a_pack(synthetic_shards: Path, tokenizer, count: int) -> tuple[PackedBatch, list[DecodedSample]]:
    samples = shard_samples(synthetic_shards / "train", tokenizer, count)
    return pack_samples(samples, SEQ_LEN, tokenizer.pad_token_id), samples


def test_loss_matches_transformers_forward(synthetic_shards: Path) -> None:
    tokenizer = load_tokenizer(None)
    batch, samples = a_pack(synthetic_shards, tokenizer, 3)
    model = tiny(tokenizer)
    reference_model = tiny(tokenizer)
    loss_sum, num_tokens, num_correct = Qwen2VLTrainModule(model)(batch)

    reference_sum, reference_tokens, reference_correct = 0.0, 0, 0
    for sample in samples:
        pixels, grid, repeat = collate_patches(sample.patches)
        logits = reference_model(
            input_ids=sample.input_ids[None],
            pixel_values=to_pixel_values(pixels, grid, repeat),
            image_grid_thw=grid,
            mm_token_type_ids=sample.mm_token_type_ids[None],
        ).logits[0, :-1]
        reference_sum = reference_sum + F.cross_entropy(logits, sample.labels[1:], reduction="sum")
        reference_tokens += int((sample.labels[1:] != -100).sum())
        reference_correct += int(
            ((logits.argmax(-1) == sample.labels[1:]) & (sample.labels[1:] != -100)).sum()
        )
    assert int(num_tokens) == batch.num_loss_tokens == reference_tokens > 0
    torch.testing.assert_close(loss_sum, reference_sum, rtol=1e-5, atol=1e-5)
    assert int(num_correct) == reference_correct


def test_frozen_tower_path_gives_the_same_loss_and_no_tower_grads(synthetic_shards: Path) -> None:
    tokenizer = load_tokenizer(None)
    batch, _ = a_pack(synthetic_shards, tokenizer, 2)
    model = tiny(tokenizer)
    full, _, _ = Qwen2VLTrainModule(model)(batch)
    frozen_module = Qwen2VLTrainModule(model, frozen_vision_tower=True)
    frozen, _, _ = frozen_module(batch)
    torch.testing.assert_close(frozen, full, rtol=1e-6, atol=1e-6)
    frozen.backward()
    assert model.model.visual.blocks[0].attn.qkv.weight.grad is None
    assert model.model.visual.merger.mlp[0].weight.grad is not None


def test_text_only_batch_still_runs_the_tower_once(synthetic_shards: Path) -> None:
    """Invariant 3: a rank without media calls the tower on a dummy input whose output counts x0."""
    tokenizer = load_tokenizer(None)
    batch, _ = a_pack(synthetic_shards, tokenizer, 2)
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    batch.input_ids[batch.input_ids == image_pad] = tokenizer.pad_token_id
    batch.mm_token_type_ids.zero_()
    batch.pixels = batch.grid_thw = batch.temporal_repeat = None
    model = tiny(tokenizer)
    calls = []
    model.model.visual.register_forward_hook(lambda *args: calls.append(1))
    loss_sum, _, _ = Qwen2VLTrainModule(model)(batch)
    loss_sum.backward()
    assert calls == [1]
    assert torch.count_nonzero(model.model.visual.blocks[0].attn.qkv.weight.grad) == 0


def test_activation_checkpointing_recomputes_the_chosen_parts_with_equal_gradients(
    synthetic_shards: Path,
) -> None:
    """`llm` / `vision` / `both` checkpoint exactly those layers; loss and gradients are unchanged."""
    import warnings

    tokenizer = load_tokenizer(None)
    batch, _ = a_pack(synthetic_shards, tokenizer, 6)
    results = {}
    for which in ("none", "llm", "vision", "both"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)  # no deprecated transformers entry point
            module = Qwen2VLTrainModule(tiny(tokenizer).train(), activation_checkpointing=which)
        llm = {layer.gradient_checkpointing for layer in module.model.model.language_model.layers}
        vision = {block.gradient_checkpointing for block in module.model.model.visual.blocks}
        assert llm == {which in ("llm", "both")} and vision == {which in ("vision", "both")}, which
        loss_sum, tokens, _ = module(batch)
        (loss_sum / tokens).backward()
        grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
        results[which] = (float(loss_sum.detach()), grads)
    loss, grads = results["none"]
    for which in ("llm", "vision", "both"):
        assert results[which][0] == pytest.approx(loss, rel=1e-6)
        assert results[which][1].keys() == grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(results[which][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)
