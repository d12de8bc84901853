"""Our training forward against transformers' own forward on the same real batch (fp32, CPU)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import Qwen2VLForConditionalGeneration

from qvltrain.data.config import DataConfig, DatasetConfig
from qvltrain.data.simple_loader import TrainBatches
from qvltrain.model.build import special_token_ids
from qvltrain.model.flavors import ModelConfig, build_hf_config
from qvltrain.model.train_module import VisionLanguageTrainModule
from qvltrain.text.tokenizer import load_tokenizer
from qvltrain.vision.budgets import ImageBudget
from qvltrain.vision.device import rows_to_pixel_values


def tiny(tokenizer) -> Qwen2VLForConditionalGeneration:
    torch.manual_seed(0)
    config = build_hf_config(ModelConfig(), special_token_ids(tokenizer), tokenizer_size=len(tokenizer))
    return Qwen2VLForConditionalGeneration(config).eval()


def test_loss_matches_transformers_forward(synthetic_shards: Path) -> None:
    tokenizer = load_tokenizer(None)
    dataset = DatasetConfig(
        name="shapes", shards=str(synthetic_shards / "train"), image_budget=ImageBudget(3136, 50176)
    )
    batch = next(TrainBatches(DataConfig(train=[dataset], micro_batch_size=3), "plain", tokenizer, 0, 1))
    model = tiny(tokenizer)
    loss_sum, num_tokens = VisionLanguageTrainModule(model)(batch)

    reference = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        pixel_values=rows_to_pixel_values(batch.pixel_rows, batch.grid_thw, batch.temporal_repeat),
        image_grid_thw=batch.grid_thw,
        mm_token_type_ids=batch.mm_token_type_ids,
        labels=batch.labels,
    )
    assert int(num_tokens) == batch.num_loss_tokens > 0
    torch.testing.assert_close(loss_sum / num_tokens, reference.loss, rtol=1e-5, atol=1e-6)


def test_frozen_tower_path_gives_the_same_loss_and_no_tower_grads(synthetic_shards: Path) -> None:
    tokenizer = load_tokenizer(None)
    dataset = DatasetConfig(
        name="shapes", shards=str(synthetic_shards / "train"), image_budget=ImageBudget(3136, 50176)
    )
    batch = next(TrainBatches(DataConfig(train=[dataset], micro_batch_size=2), "plain", tokenizer, 0, 1))
    model = tiny(tokenizer)
    full, _ = VisionLanguageTrainModule(model)(batch)
    frozen_module = VisionLanguageTrainModule(model, frozen_vision_tower=True)
    frozen, _ = frozen_module(batch)
    torch.testing.assert_close(frozen, full, rtol=1e-6, atol=1e-6)
    frozen.backward()
    assert model.model.visual.blocks[0].attn.qkv.weight.grad is None
    assert model.model.visual.merger.mlp[0].weight.grad is not None


def test_text_only_batch_still_runs_the_tower_once(synthetic_shards: Path) -> None:
    """Invariant 3: a rank without media calls the tower on a dummy input whose output counts x0."""
    tokenizer = load_tokenizer(None)
    dataset = DatasetConfig(
        name="shapes", shards=str(synthetic_shards / "train"), image_budget=ImageBudget(3136, 50176)
    )
    batch = next(TrainBatches(DataConfig(train=[dataset], micro_batch_size=2), "plain", tokenizer, 0, 1))
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    batch.input_ids[batch.input_ids == image_pad] = tokenizer.pad_token_id
    batch.mm_token_type_ids.zero_()
    batch.pixel_rows = batch.grid_thw = batch.temporal_repeat = None
    model = tiny(tokenizer)
    calls = []
    model.model.visual.register_forward_hook(lambda *args: calls.append(1))
    loss_sum, _ = VisionLanguageTrainModule(model)(batch)
    loss_sum.backward()
    assert calls == [1]
    assert torch.count_nonzero(model.model.visual.blocks[0].attn.qkv.weight.grad) == 0
