"""The packed data path on real shards: pack layout, reader split, mixture, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qvltrain.batch import PackedBatch
from qvltrain.data.config import DataConfig, DatasetConfig
from qvltrain.data.loader import TrainBatches
from qvltrain.text.tokenizer import load_tokenizer
from qvltrain.vision.budgets import ImageBudget
from qvltrain.vision.patches import pixels_shape
from tests.data.mixed_shards import dataset, write_mixed_shards

SHAPES_BUDGET = ImageBudget(min_pixels=3136, max_pixels=50176)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    return write_mixed_shards(tmp_path_factory.mktemp("mixed"), num_samples=40, samples_per_shard=5)


def config(datasets, **overrides) -> DataConfig:
    values = {"seq_len": 256, "max_patches": 768, "pack_window": 16, "shuffle_buffer": 4, **overrides}
    return DataConfig(train=datasets, **values)


def two_datasets(mixed: Path, synthetic_shards: Path) -> list[DatasetConfig]:
    shapes = DatasetConfig(name="shapes", shards=str(synthetic_shards / "train"), image_budget=SHAPES_BUDGET)
    return [dataset("mixed", mixed, weight=2.0), shapes]


def check_pack(batch: PackedBatch, seq_len: int, tokenizer) -> None:
    length = batch.input_ids.shape[1]
    assert (
        length == seq_len and batch.labels.shape == (1, length) and batch.position_ids.shape == (4, 1, length)
    )
    cu = batch.cu_seqlens.tolist()
    assert (
        cu[0] == 0
        and cu[-1] == length
        and batch.max_seqlen == max(b - a for a, b in zip(cu, cu[1:], strict=False))
    )
    for start, end in zip(cu, cu[1:], strict=False):
        assert batch.position_ids[0, 0, start:end].tolist() == list(range(end - start))  # restarts
        assert batch.labels[0, start] == -100  # never trained across samples
    assert batch.num_real_tokens == length - batch.num_padding
    assert (batch.labels[0, length - batch.num_padding :] == -100).all()
    visual = int((batch.mm_token_type_ids > 0).sum())
    if batch.grid_thw is None:
        assert visual == 0
    else:
        assert visual == int(batch.grid_thw.prod(-1).sum()) // 4
        shapes = [
            pixels_shape(tuple(g), r)
            for g, r in zip(batch.grid_thw.tolist(), batch.temporal_repeat.tolist(), strict=True)
        ]
        assert [tuple(p.shape) for p in batch.pixels] == shapes
        assert all(p.dtype == torch.uint8 for p in batch.pixels)
    assert not ((batch.mm_token_type_ids[0] > 0) & (batch.labels[0] != -100)).any()


def test_packs_are_well_formed_and_tight(mixed: Path, synthetic_shards: Path) -> None:
    tokenizer = load_tokenizer(None)
    batches = TrainBatches(config(two_datasets(mixed, synthetic_shards)), "plain", tokenizer, 0, 1)
    packs = [next(batches) for _ in range(12)]
    for pack in packs:
        check_pack(pack, 256, tokenizer)
    assert sum(p.num_real_tokens for p in packs) / (12 * 256) > 0.9
    sources = {s for p in packs for s in p.sources}
    assert sources == {"mixed", "shapes"}
    assert any(p.grid_thw is not None and 1 in p.temporal_repeat.tolist() for p in packs)  # video made it
    assert not batches.skips


def test_micro_batch_of_two_packs(mixed: Path) -> None:
    batches = TrainBatches(
        config([dataset("mixed", mixed)], micro_batch_size=2), "plain", load_tokenizer(None), 0, 1
    )
    batch = next(batches)
    assert batch.input_ids.shape == (1, 512) and 256 in batch.cu_seqlens.tolist()


def test_readers_split_samples_and_epochs_repeat(mixed: Path) -> None:
    tokenizer = load_tokenizer(None)
    keys = []
    for rank in (0, 1):
        batches = TrainBatches(
            config([dataset("mixed", mixed)], shuffle_buffer=1, pack_window=4), "plain", tokenizer, rank, 2
        )
        seen = []
        while len(seen) < 20:  # one epoch of this rank's 20 samples (tests/data/test_fair_epochs.py)
            seen += next(batches).keys
        keys.append(set(seen[:12]))  # the packer (window 4) delivers them before reading far past them
        for _ in range(6):  # the reader goes on into the next epochs: every rank always has data
            next(batches)
        assert batches.state_dict()["readers"][0]["streams"][0]["epoch"] >= 1
    assert keys[0] and keys[1] and not keys[0] & keys[1]
    with pytest.raises(ValueError, match="40 samples in 8 shards for 48 readers"):
        TrainBatches(config([dataset("mixed", mixed)], num_workers=2), "plain", tokenizer, 0, 24)


def same_batches(first: list[PackedBatch], second: list[PackedBatch]) -> None:
    for a, b in zip(first, second, strict=True):
        assert a.keys == b.keys
        for name in (
            "input_ids",
            "labels",
            "mm_token_type_ids",
            "position_ids",
            "cu_seqlens",
            "grid_thw",
        ):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None and y is None) or torch.equal(x, y), name
        assert (a.pixels is None and b.pixels is None) or (
            len(a.pixels) == len(b.pixels) and all(map(torch.equal, a.pixels, b.pixels))
        ), "pixels"


@pytest.mark.parametrize("num_workers,world_size", [(0, 1), (0, 2), (2, 1), (2, 2)])
def test_resume_is_exact(mixed: Path, synthetic_shards: Path, num_workers: int, world_size: int) -> None:
    data = config(two_datasets(mixed, synthetic_shards), num_workers=num_workers)
    check_resume_is_exact(data, world_size - 1, world_size)


def check_resume_is_exact(data, rank: int, world_size: int) -> dict:
    """9 batches uninterrupted == 5, state through torch.save, 4 more after loading it; the state."""
    tokenizer = load_tokenizer(None)
    uninterrupted = TrainBatches(data, "plain", tokenizer, rank, world_size)
    reference = [next(uninterrupted) for _ in range(9)]
    uninterrupted.close()

    first = TrainBatches(data, "plain", tokenizer, rank, world_size)
    head = [next(first) for _ in range(5)]
    state = first.state_dict()
    first.close()
    resumed = TrainBatches(data, "plain", tokenizer, rank, world_size)
    resumed.load_state_dict(torch.load(_saved(state), weights_only=False))
    tail = [next(resumed) for _ in range(4)]
    resumed.close()
    same_batches(head + tail, reference)
    return state


def _saved(state: dict):
    """Through torch.save, as the checkpoint stores it."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_state_refuses_another_layout(mixed: Path) -> None:
    tokenizer = load_tokenizer(None)
    state = TrainBatches(config([dataset("mixed", mixed)]), "plain", tokenizer, 0, 1).state_dict()
    with pytest.raises(ValueError, match="same values"):
        TrainBatches(config([dataset("mixed", mixed)]), "plain", tokenizer, 0, 2).load_state_dict(state)
