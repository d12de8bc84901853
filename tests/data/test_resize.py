"""A data state re-derived for another number of readers (qvltrain/data/resize.py): within the epochs
in progress no sample is read twice or lost across the change, samples read but not packed are
handed on and packed, counts keep their totals, and the same resume gives the same data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from qvltrain.data.loader import TrainBatches
from qvltrain.data.reader import iter_samples
from qvltrain.data.resize import cut
from qvltrain.data.stream import DatasetStream, Segment
from qvltrain.shards.writer import ShardWriter
from qvltrain.text.tokenizer import load_tokenizer
from tests.data.mixed_shards import dataset
from tests.data.test_fair_epochs import SIZES, record
from tests.data.test_loader import config


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory) -> Path:
    """Dataset a: ten shards of unequal size (54 samples); dataset b: three shards of 7."""
    root = tmp_path_factory.mktemp("resize")
    for name, sizes in (("a", SIZES), ("b", (7, 7, 7))):
        number = 0
        for shard, size in enumerate(sizes):
            with ShardWriter(str(root / name), f"part{shard:02d}", max_samples=100) as writer:
                for _ in range(size):
                    key = f"{name}{number:03d}"
                    writer.write(key, record(key), {})
                    number += 1
    return root


def data_config(root: Path, **overrides):
    datasets = [dataset("a", root / "a", weight=2.0), dataset("b", root / "b")]
    return config(datasets, seq_len=64, pack_window=8, shuffle_buffer=3, **overrides)


def ranks(root: Path, world_size: int, **overrides) -> list[TrainBatches]:
    tokenizer = load_tokenizer(None)
    return [
        TrainBatches(data_config(root, **overrides), "chatml", tokenizer, rank, world_size)
        for rank in range(world_size)
    ]


@pytest.fixture
def reads(monkeypatch) -> list[tuple[str, int, str]]:
    """Every sample a stream reads from its shards: (dataset, epoch it was read in, key)."""
    log: list[tuple[str, int, str]] = []
    original = DatasetStream._read_one

    def recording(self):
        sample = original(self)
        log.append((self.name, self.epoch, sample.key))
        return sample

    monkeypatch.setattr(DatasetStream, "_read_one", recording)
    return log


def every_key(root: Path, name: str) -> Counter:
    return Counter(
        sample.key for shard in sorted((root / name).glob("*.tar")) for sample in iter_samples(str(shard))
    )


def in_flight(state: dict) -> Counter:
    """Keys a rank's readers had read but not packed (shuffle buffers, planner window, planned packs)."""
    keys: Counter = Counter()
    for reader in state["readers"]:
        if reader is None:
            continue
        for stream in reader["streams"]:
            keys.update(key for _, _, key in stream["buffer"])
        keys.update(ref[3] for ref in reader["pending"] + [r for pack in reader["ready"] for r in pack])
    return keys


def planned(state: dict, index: int) -> Counter:
    """Keys of the re-split segments a rank's readers got for dataset `index`."""
    keys: Counter = Counter()
    for reader in state["readers"]:
        for url, first, end in reader["streams"][index]["segments"]:
            keys.update(sample.key for sample in iter_samples(url, first) if sample.ordinal < end)
    return keys


# (world size, data.num_workers) before and after, packs per rank before. With 2 x 2 readers the
# saved readers stand in different epochs of a dataset after 10 or 14 packs: the rest then spans two.
CASES = {
    "2to1": ((2, 0), (1, 0), 20),
    "2to3": ((2, 0), (3, 0), 20),
    "1to2": ((1, 0), (2, 0), 40),
    "workers0to2": ((2, 0), (2, 2), 20),
    "workers2to1": ((2, 2), (1, 0), 10),
    "workers2to3": ((2, 2), (3, 0), 14),
}


@pytest.mark.parametrize("case", list(CASES))
def test_epochs_in_progress_go_on_without_repeats_or_losses(two_sources: Path, reads, case: str) -> None:
    (old_world, old_workers), (new_world, new_workers), num_packs = CASES[case]
    before = ranks(two_sources, old_world, num_workers=old_workers)
    packed = Counter(key for batches in before for _ in range(num_packs) for key in next(batches).keys)
    saved = [batches.state_dict() for batches in before]
    if old_workers:
        epochs = [{r["streams"][d]["epoch"] for s in saved for r in s["readers"]} for d in (0, 1)]
        assert any(len(spread) > 1 for spread in epochs)  # the case that spans two epochs
    for batches in before:
        batches.close()
    handed_on = sum((in_flight(state) for state in saved), Counter())
    old_reads = Counter((source, key) for source, _, key in reads)
    if old_workers == 0:  # in process, the reads are seen: each was packed or is handed on
        assert old_reads == Counter((key[0], key) for key in (packed + handed_on).elements())

    after = ranks(two_sources, new_world, num_workers=new_workers)
    for batches in after:
        batches.load_resized_state(saved)
    resized = [batches.state_dict() for batches in after]
    assert sum((in_flight(state) for state in resized), Counter()) == handed_on  # dealt out, none lost
    reads.clear()
    epochs = [resized[0]["readers"][0]["streams"][index]["epoch"] for index in (0, 1)]  # in progress

    def done() -> bool:  # every handed-on sample packed, and (in process) the re-split rest read
        if any(packed_after[key] < count for key, count in handed_on.items()):
            return False
        return new_workers > 0 or all(
            stream.epoch > epoch
            for batches in after
            for stream, epoch in zip(batches._local.streams, epochs, strict=True)
        )

    packed_after: Counter = Counter()
    for _ in range(100):
        packed_after.update(key for batches in after for key in next(batches).keys)
        if done():
            break
    assert done()

    for index, name in enumerate(("a", "b")):
        epoch = epochs[index]
        assert {r["streams"][index]["epoch"] for state in resized for r in state["readers"]} == {epoch}
        rest = sum((planned(state, index) for state in resized), Counter())
        if new_workers == 0:  # in process: the new readers read exactly the re-split rest, then go on
            assert Counter(key for source, e, key in reads if source == name and e == epoch) == rest
            assert any(source == name and e == epoch + 1 for source, e, _ in reads)
        # Epochs 0..epoch: what the saved readers read (packed or handed on) and the rest the new
        # readers read visit every sample exactly epoch + 1 times.
        before_change = Counter({key: n for key, n in (packed + handed_on).items() if key.startswith(name)})
        assert before_change + rest == Counter({key: epoch + 1 for key in every_key(two_sources, name)}), name
    # the case is not trivial: mid-epoch for both, and a second epoch begun for the small dataset
    assert resized[0]["readers"][0]["streams"][1]["epoch"] >= 1
    assert all(sum(planned(state, 0).values()) for state in resized)


def test_counts_keep_their_totals_and_the_same_resume_gives_the_same_data(two_sources: Path) -> None:
    before = ranks(two_sources, 2)
    for batches in before:
        for _ in range(5):
            next(batches)
    saved = [batches.state_dict() for batches in before]
    mixture = sum((batches.mixture for batches in before), Counter())

    def resume() -> list[TrainBatches]:
        after = ranks(two_sources, 3)
        for batches in after:
            batches.load_resized_state(saved)
        return after

    first, second = resume(), resume()
    assert sum((batches.mixture for batches in first), Counter()) == mixture
    assert all(state["consumed"] == 5 for state in (batches.state_dict() for batches in first))
    for one, other in zip(first, second, strict=True):
        for _ in range(4):
            a, b = next(one), next(other)
            assert a.keys == b.keys and torch.equal(a.input_ids, b.input_ids)
    # and a resized state resumes exactly like any other (saved again, loaded at the same split)
    states = [batches.state_dict() for batches in first]
    expected = [[next(batches).keys for _ in range(3)] for batches in first]
    again = ranks(two_sources, 3)
    for batches, state in zip(again, states, strict=True):
        batches.load_state_dict(state)
    assert [[next(batches).keys for _ in range(3)] for batches in again] == expected


def test_refused_without_all_ranks_or_at_mismatched_steps(two_sources: Path) -> None:
    before = ranks(two_sources, 2)
    next(before[0]), next(before[0]), next(before[1])
    saved = [batches.state_dict() for batches in before]
    target = ranks(two_sources, 1)[0]
    with pytest.raises(ValueError, match="consumed different numbers of packs"):
        target.load_resized_state(saved)
    with pytest.raises(ValueError, match="expected every rank's"):
        target.load_resized_state(saved[1:])
    with pytest.raises(ValueError, match="allow_world_size_change"):
        target.load_state_dict(saved[0])


def test_cut_splits_segments_evenly_in_order() -> None:
    segments = [Segment("x", 2, 5), Segment("y", 0, 1), Segment("z", 4, 9)]  # 3 + 1 + 5 samples
    parts = [cut(segments, part, 4) for part in range(4)]
    sizes = [sum(s.end - s.first for s in part) for part in parts]
    assert sizes == [2, 2, 2, 3]
    flat = [(s.url, o) for part in parts for s in part for o in range(s.first, s.end)]
    assert flat == [("x", 2), ("x", 3), ("x", 4), ("y", 0), ("z", 4), ("z", 5), ("z", 6), ("z", 7), ("z", 8)]
    assert cut([], 0, 3) == []
