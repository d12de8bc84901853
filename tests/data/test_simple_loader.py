"""The first data path on real shards: shard writing, reading, decoding, collate, bad samples."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import torch

from qvltrain.data.config import DataConfig, DatasetConfig
from qvltrain.data.shards import ShardWriter, expand_shards
from qvltrain.data.simple_loader import TrainBatches
from qvltrain.text.tokenizer import load_tokenizer
from qvltrain.vision.budgets import ImageBudget

BUDGET = ImageBudget(min_pixels=3136, max_pixels=50176)


def data_config(shards: str, **overrides) -> DataConfig:
    dataset = DatasetConfig(name="shapes", shards=shards, image_budget=BUDGET)
    return DataConfig(train=[dataset], **{"max_length": 256, "micro_batch_size": 4, **overrides})


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_recipe_is_deterministic(synthetic_shards: Path, tmp_path: Path) -> None:
    from data_recipes.synthetic_shapes import main

    main(["--out", str(tmp_path), "--train", "96", "--validation", "32", "--samples-per-shard", "16"])
    assert digest(tmp_path / "train") == digest(synthetic_shards / "train")
    assert len(expand_shards(str(tmp_path / "train"))) == 6


def test_expand_shards_forms(synthetic_shards: Path) -> None:
    folder = synthetic_shards / "train"
    by_folder = expand_shards(str(folder))
    assert expand_shards(str(folder / "train-{000000..000005}.tar")) == by_folder
    assert expand_shards(str(folder / "*.tar")) == by_folder
    assert expand_shards(f"{folder}/train-000000.tar::{folder}/train-000001.tar") == by_folder[:2]
    with pytest.raises(ValueError, match="missing"):
        expand_shards(str(folder / "train-{000000..000099}.tar"))


def test_batches_are_consistent(synthetic_shards: Path) -> None:
    tokenizer = load_tokenizer(None)
    batches = TrainBatches(
        data_config(str(synthetic_shards / "train")), "plain", tokenizer, rank=0, world_size=1
    )
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for _ in range(3):
        batch = next(batches)
        assert batch.input_ids.shape == batch.labels.shape == batch.attention_mask.shape
        assert batch.position_ids.shape == (3, *batch.input_ids.shape)
        # one merged token per 4 patches, all images present, no pad token trained
        assert int((batch.input_ids == image_pad).sum()) == int(batch.grid_thw.prod(-1).sum()) // 4
        assert batch.pixel_rows.shape[0] == int(batch.grid_thw.prod(-1).sum())
        assert not bool(((batch.attention_mask == 0) & (batch.labels != -100)).any())
        assert not bool(((batch.input_ids == image_pad) & (batch.labels != -100)).any())
        captions = [tokenizer.decode(row[row != -100]) for row in batch.labels]
        assert all(caption.startswith("a ") for caption in captions), captions


def test_ranks_read_disjoint_shards(synthetic_shards: Path) -> None:
    tokenizer = load_tokenizer(None)
    config = data_config(str(synthetic_shards / "train"), shuffle_buffer=1)
    keys = []
    for rank in (0, 1):
        batches = TrainBatches(config, "plain", tokenizer, rank=rank, world_size=2)
        keys.append({key for _ in range(6) for key in next(batches).keys})
    assert keys[0] and keys[1] and not keys[0] & keys[1]
    with pytest.raises(ValueError, match="6 shards for 8 ranks"):
        next(TrainBatches(config, "plain", tokenizer, rank=0, world_size=8))


def test_bad_samples_are_counted_not_fatal(tmp_path: Path, synthetic_shards: Path) -> None:
    source = tarfile.open(next((synthetic_shards / "train").glob("*.tar")))
    good = [(m.name, source.extractfile(m).read()) for m in source.getmembers()][:8]  # 4 samples
    with ShardWriter(str(tmp_path), "bad", max_samples=100) as writer:
        for index in range(0, len(good), 2):
            (_, json_bytes), (_, jpeg) = good[index], good[index + 1]
            import json as json_module

            writer.write(f"good{index}", json_module.loads(json_bytes), {"0.jpg": jpeg})
        writer.write("cut", json_module.loads(good[0][1]), {"0.jpg": good[1][1][:200]})
        writer.write("noimage", json_module.loads(good[0][1]), {"0.jpg": b"definitely not a jpeg"})
        writer.write("nomedia", json_module.loads(good[0][1]), {})
    tar = tmp_path / "bad-000000.tar"
    with tarfile.open(tar, "a") as handle:  # a sample whose JSON is broken
        info = tarfile.TarInfo("brokenjson.json")
        payload = b'{"task": "caption", "messages": ['
        info.size = len(payload)
        handle.addfile(info, io.BytesIO(payload))
    batches = TrainBatches(
        data_config(str(tmp_path), shuffle_buffer=1, micro_batch_size=8), "plain", load_tokenizer(None), 0, 1
    )
    batch = next(batches)
    assert set(batch.keys) <= {"good0", "good2", "good4", "good6"}
    assert batches.skips["truncated_image"] >= 1
    assert batches.skips["not_an_image"] >= 1
    assert batches.skips["missing_media"] >= 1
    assert batches.skips["invalid_json"] >= 1
    assert torch.all(batch.attention_mask.sum(1) > 0)
