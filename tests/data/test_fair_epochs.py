"""Fair epochs: one epoch of a dataset visits every sample exactly once across all readers, whatever
the shard count and sizes, and a reader's stream resumes exactly mid-slice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import webdataset as wds

from qvltrain.data.loader import TrainBatches
from qvltrain.data.shards import expand_shards, shard_sample_counts
from qvltrain.data.skips import SkipLog
from qvltrain.data.stream import DatasetStream, epoch_segments
from qvltrain.shards.writer import ShardWriter
from qvltrain.text.tokenizer import load_tokenizer
from tests.data.mixed_shards import dataset
from tests.data.test_loader import config

SIZES = (1, 2, 3, 5, 8, 13, 2, 7, 4, 9)  # 10 shards of unequal size, 54 samples


def record(key: str) -> dict:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": f"say {key}"}]},
        {"role": "assistant", "content": [{"type": "text", "text": key}]},
    ]
    return {"task": "chat", "messages": messages, "meta": {"source": "fair", "image_sizes": []}}


@pytest.fixture(scope="module", params=["index", "webdataset"])
def uneven(request, tmp_path_factory) -> Path:
    """Ten shards of unequal size: with an index (ShardWriter) or without (webdataset's TarWriter)."""
    folder = tmp_path_factory.mktemp(request.param)
    number = 0
    for shard, size in enumerate(SIZES):
        if request.param == "index":
            with ShardWriter(str(folder), f"part{shard:02d}", max_samples=100) as writer:
                for _ in range(size):
                    writer.write(f"k{number:03d}", record(f"k{number:03d}"), {})
                    number += 1
            continue
        with wds.TarWriter(str(folder / f"part{shard:02d}.tar")) as writer:
            for _ in range(size):
                writer.write(
                    {"__key__": f"k{number:03d}", "json": json.dumps(record(f"k{number:03d}")).encode()}
                )
                number += 1
    return folder


def stream(shards, counts, reader: int, num_readers: int = 4) -> DatasetStream:
    return DatasetStream("fair", shards, counts, 7, reader, num_readers, 1, SkipLog(10))


def test_one_epoch_visits_every_sample_once_across_readers(uneven: Path) -> None:
    shards = expand_shards(str(uneven))
    counts = shard_sample_counts(shards)
    assert sorted(counts) == sorted(SIZES)
    everything = {f"k{n:03d}" for n in range(sum(SIZES))}
    for epoch in (0, 1):
        seen: list[str] = []
        slice_sizes = []
        for reader in range(4):
            segments = epoch_segments(shards, counts, 7, "fair", epoch, reader, 4)
            slice_sizes.append(sum(s.end - s.first for s in segments))
            readers_stream = stream(shards, counts, reader)
            readers_stream.epoch = epoch
            seen += [readers_stream.next().key for _ in range(slice_sizes[-1])]
            assert readers_stream.epoch == epoch  # the slice ended exactly at the epoch's end
        assert sorted(seen) == sorted(everything)  # every sample once, none twice
        assert max(slice_sizes) - min(slice_sizes) <= 1  # 13 or 14 each, whatever the shard sizes


def test_a_reader_resumes_exactly_mid_slice(uneven: Path) -> None:
    shards = expand_shards(str(uneven))
    counts = shard_sample_counts(shards)
    reference = stream(shards, counts, 2)
    expected = [reference.next().key for _ in range(40)]  # through three epochs of its slice
    first = stream(shards, counts, 2)
    head = [first.next().key for _ in range(17)]
    resumed = stream(shards, counts, 2)
    resumed.load_state_dict(first.state_dict())
    assert head + [resumed.next().key for _ in range(23)] == expected


def test_one_shard_serves_many_readers(tmp_path: Path) -> None:
    """A dataset of a single shard splits by samples: four readers of one 9-sample tar."""
    with ShardWriter(str(tmp_path), "one", max_samples=100) as writer:
        for number in range(9):
            writer.write(f"k{number:03d}", record(f"k{number:03d}"), {})
    tokenizer = load_tokenizer(None)
    data = config([dataset("one", tmp_path)], shuffle_buffer=1)
    assert next(TrainBatches(data, "chatml", tokenizer, 3, 4)).keys
    with pytest.raises(ValueError, match="9 samples in 1 shards for 10 readers"):
        TrainBatches(data, "chatml", tokenizer, 0, 10)
