"""The first data path: shards -> decoded samples -> padded micro-batches, per rank, forever.

Each rank reads its own shards (shard i goes to rank i % world_size), in an order shuffled per
epoch with (seed, epoch, rank), through a seeded shuffle buffer; datasets are blended by weight.
Bad samples are skipped and counted by reason. The streaming packer replaces the padded collate.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import torch
import webdataset as wds

from qvltrain.data.batch import Batch
from qvltrain.data.config import DataConfig, DatasetConfig
from qvltrain.data.decode import BadSample, DecodedSample, SampleDecoder
from qvltrain.data.shards import expand_shards
from qvltrain.text.tokenizer import TokenizerInfo
from qvltrain.vision.device import collate_patches

MAX_CONSECUTIVE_FAILURES = 100


def rank_shards(dataset: DatasetConfig, rank: int, world_size: int) -> list[str]:
    shards = expand_shards(dataset.shards)
    if len(shards) < world_size:
        raise ValueError(
            f"dataset {dataset.name!r} has {len(shards)} shards for {world_size} ranks: every rank needs at "
            "least one; write smaller shards (data_recipes --samples-per-shard)"
        )
    return shards[rank::world_size]


def dataset_samples(
    dataset: DatasetConfig, decoder: SampleDecoder, seed: int, rank: int, world_size: int, skips: Counter
) -> Iterator[DecodedSample]:
    """Endless decoded samples of one dataset for one rank."""
    shards = rank_shards(dataset, rank, world_size)
    epoch = 0
    consecutive_failures = 0
    while True:
        order = list(shards)
        random.Random(f"{seed}-{dataset.name}-{epoch}-{rank}").shuffle(order)
        for sample in wds.WebDataset(order, shardshuffle=False, empty_check=False, nodesplitter=None):
            try:
                yield decoder(sample)
                consecutive_failures = 0
            except BadSample as error:
                skips[error.reason] += 1
                consecutive_failures += 1
                if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                    raise RuntimeError(
                        f"{consecutive_failures} consecutive bad samples in dataset {dataset.name!r}, last: {error}"
                    ) from error
        epoch += 1


def shuffled(
    samples: Iterator[DecodedSample], buffer_size: int, rng: random.Random
) -> Iterator[DecodedSample]:
    buffer: list[DecodedSample] = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= buffer_size:
            index = rng.randrange(len(buffer))
            buffer[index], buffer[-1] = buffer[-1], buffer[index]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


def collate(samples: list[DecodedSample], pad_id: int) -> Batch:
    """Right-pad to the longest sample; padding is untrained and masked out of attention."""
    length = max(len(s.input_ids) for s in samples)
    batch_size = len(samples)
    input_ids = torch.full((batch_size, length), pad_id, dtype=torch.long)
    labels = torch.full((batch_size, length), -100, dtype=torch.long)
    attention_mask = torch.zeros(batch_size, length, dtype=torch.long)
    mm_types = torch.zeros(batch_size, length, dtype=torch.int32)
    position_ids = torch.zeros(3, batch_size, length, dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample.input_ids)
        input_ids[row, :n], labels[row, :n], mm_types[row, :n] = (
            sample.input_ids,
            sample.labels,
            sample.mm_token_type_ids,
        )
        attention_mask[row, :n] = 1
        position_ids[:, row, :n] = sample.position_ids
        position_ids[:, row, n:] = sample.position_ids.max() + 1 + torch.arange(length - n)
    pixel_rows, grid_thw, temporal_repeat = collate_patches([p for s in samples for p in s.patches])
    return Batch(
        input_ids=input_ids,
        labels=labels,
        attention_mask=attention_mask,
        mm_token_type_ids=mm_types,
        position_ids=position_ids,
        pixel_rows=pixel_rows if grid_thw.shape[0] else None,
        grid_thw=grid_thw if grid_thw.shape[0] else None,
        temporal_repeat=temporal_repeat if grid_thw.shape[0] else None,
        keys=[s.key for s in samples],
    )


class TrainBatches:
    """Iterator of padded micro-batches for one rank; `skips` counts skipped samples by reason."""

    def __init__(
        self, config: DataConfig, template: str, tokenizer, rank: int, world_size: int, datasets=None
    ):
        datasets = config.train if datasets is None else datasets
        if not datasets:
            raise ValueError("data.train lists no dataset")
        info = TokenizerInfo.from_tokenizer(tokenizer)
        self.pad_id = info.special.pad
        self.micro_batch_size = config.micro_batch_size
        self.skips: Counter = Counter()
        self._rng = random.Random(f"{config.seed}-mixture-{rank}")
        self._weights = [d.weight for d in datasets]
        self._streams = [
            shuffled(
                dataset_samples(
                    d,
                    SampleDecoder(d, template, info, config.max_length),
                    config.seed,
                    rank,
                    world_size,
                    self.skips,
                ),
                config.shuffle_buffer,
                random.Random(f"{config.seed}-buffer-{d.name}-{rank}"),
            )
            for d in datasets
        ]

    def __iter__(self) -> TrainBatches:
        return self

    def __next__(self) -> Batch:
        samples = []
        for _ in range(self.micro_batch_size):
            (stream,) = self._rng.choices(self._streams, weights=self._weights)
            samples.append(next(stream))
        return collate(samples, self.pad_id)


def build_train_batches(
    config: DataConfig, template: str, tokenizer, rank: int, world_size: int
) -> TrainBatches:
    return TrainBatches(config, template, tokenizer, rank, world_size)
