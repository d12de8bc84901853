"""A rank's data state re-derived from every saved rank's, for a resume by another number of readers.

    state = resized_rank_state(saved_states, setup, rank, world_size, num_workers)
    batches.load_state_dict(state)        # TrainBatches.load_resized_state does both

Readers are cut by world size x data.num_workers (data.stream), so a saved reader's state means
nothing to a run with another count. What carries over, per dataset:

- Epochs. Let E be the newest epoch any saved reader had started. Everything the saved readers had
  not yet read of epochs <= E (the rest of each reader's slice, and whole slices of epochs a reader
  had not reached) is one list of segments, cut into equal slices for the new readers: their
  current epoch is E, given as those segments (`segments` in the stream state). Epoch E + 1 on is
  cut the usual way. So every sample of every epoch up to E is read exactly once over the old and
  the new run together, and later epochs visit every sample once across the new readers.
- Samples read but not yet packed (shuffle buffers, the planner's window and planned packs) go,
  dealt in turn, into the new readers' shuffle buffers: each is packed (or skipped) once.
- Counts: samples packed per dataset (the realised mixture) and skips by reason keep their totals
  over all readers; packs consumed keeps its value (every rank had consumed the same number).

Not kept: the order. The shuffle buffers' and mixture's RNGs are seeded anew from (data.seed,
dataset, new reader, old and new reader counts, packs consumed), so the same resume gives the same
data; the skip-budget windows and consecutive-failure runs start empty.
"""

from __future__ import annotations

import random
from typing import Any

from qvltrain.data.pipeline import STATE_FORMAT, PipelineSetup
from qvltrain.data.stream import Segment, epoch_segments


def _saved_readers(saved: list[dict[str, Any]]) -> tuple[list[dict[str, Any] | None], int]:
    """Every saved reader's pipeline state in global reader order (None: it never made a pack), and
    the packs each rank had consumed."""
    world_sizes = {state["world_size"] for state in saved}
    consumed = {state["consumed"] for state in saved}
    ranks = [state["rank"] for state in saved]
    if world_sizes != {len(saved)} or ranks != list(range(len(saved))):
        raise ValueError(
            f"data states of ranks {ranks} (world sizes {sorted(world_sizes)}): expected every rank's"
        )
    if len(consumed) != 1:
        raise ValueError(
            f"the saved ranks consumed different numbers of packs ({sorted(consumed)}): not one step"
        )
    readers = [reader for state in saved for reader in state["readers"]]
    num_workers = max(1, saved[0]["num_workers"])
    if len(readers) != len(saved) * num_workers:
        raise ValueError(f"{len(readers)} saved readers for {len(saved)} ranks x {num_workers} workers")
    return readers, consumed.pop()


def _rest(stream: dict[str, Any], segments: list[Segment]) -> list[Segment]:
    """What a reader at (position, ordinal) has not yet read of its epoch's segments."""
    position, ordinal = stream["position"], stream["ordinal"]
    rest = segments[position:]
    if rest:
        first = rest[0]
        rest[0] = Segment(first.url, max(ordinal, first.first), first.end)
    return [segment for segment in rest if segment.first < segment.end]


def leftover(
    streams: list[dict[str, Any] | None], shards: list[str], counts: list[int], seed: int, name: str
) -> tuple[int, list[Segment]]:
    """(E, the unread segments of epochs <= E of all saved readers in order): one dataset."""
    num_readers = len(streams)
    fresh = {"epoch": 0, "position": 0, "ordinal": 0, "segments": None}
    streams = [stream or fresh for stream in streams]
    newest = max(stream["epoch"] for stream in streams)
    segments: list[Segment] = []
    for epoch in range(min(stream["epoch"] for stream in streams), newest + 1):
        for reader, stream in enumerate(streams):
            if epoch < stream["epoch"]:
                continue
            if stream.get("segments") is not None and epoch == stream["epoch"]:
                own = [Segment(*segment) for segment in stream["segments"]]
            else:
                own = epoch_segments(shards, counts, seed, name, epoch, reader, num_readers)
            segments += _rest(stream, own) if epoch == stream["epoch"] else own
    return newest, segments


def cut(segments: list[Segment], part: int, num_parts: int) -> list[Segment]:
    """Part `part` of `num_parts` equal slices (+-1 sample) of the samples of `segments`, in order."""
    total = sum(segment.end - segment.first for segment in segments)
    start, stop = part * total // num_parts, (part + 1) * total // num_parts
    result, offset = [], 0
    for segment in segments:
        size = segment.end - segment.first
        first, end = max(start - offset, 0), min(stop - offset, size)
        if first < end:
            result.append(Segment(segment.url, segment.first + first, segment.first + end))
        offset += size
    return result


def _share(total: int, part: int, num_parts: int) -> int:
    return total * (part + 1) // num_parts - total * part // num_parts


def resized_rank_state(
    saved: list[dict[str, Any]], setup: PipelineSetup, rank: int, world_size: int, num_workers: int
) -> dict[str, Any]:
    """This rank's TrainBatches state (data.loader) from every saved rank's, for any world size and
    data.num_workers (see the module docstring for what carries over)."""
    readers, consumed = _saved_readers(saved)
    old_count, slots = len(readers), max(1, num_workers)
    new_count = world_size * slots
    seed = setup.config.seed
    tag = f"resized-{old_count}-to-{new_count}-at-{consumed}"
    in_flight = [[] for _ in setup.datasets]  # (url, ordinal, key) read but not packed, per dataset
    skip_counts: dict[str, int] = {}
    packed = [0] * len(setup.datasets)
    for reader in readers:
        if reader is None:
            continue
        if reader.get("format") != STATE_FORMAT or len(reader["streams"]) != len(setup.datasets):
            raise ValueError(
                f"saved data state of reader {reader.get('reader')} (format {reader.get('format')}, "
                f"{len(reader['streams'])} datasets) does not match this run's {len(setup.datasets)} datasets"
            )
        for dataset, stream in enumerate(reader["streams"]):
            in_flight[dataset] += [tuple(ref) for ref in stream["buffer"]]
        for ref in reader["pending"] + [ref for pack in reader["ready"] for ref in pack]:
            in_flight[ref[0]].append((ref[1], ref[2], ref[3]))
        for reason, count in reader["skips"]["counts"].items():
            skip_counts[reason] = skip_counts.get(reason, 0) + count
        packed = [total + count for total, count in zip(packed, reader["num_packed"], strict=True)]
    plans = []
    for dataset, (config, shards, counts) in enumerate(
        zip(setup.datasets, setup.shards, setup.counts, strict=True)
    ):
        streams = [None if reader is None else reader["streams"][dataset] for reader in readers]
        plans.append(leftover(streams, shards, counts, seed, config.name))
    states = []
    for slot in range(slots):
        reader = rank * slots + slot
        streams = []
        for dataset, (epoch, segments) in enumerate(plans):
            name = setup.datasets[dataset].name
            streams.append(
                {
                    "epoch": epoch,
                    "position": 0,
                    "ordinal": 0,
                    "read_this_epoch": 0,
                    "rng": random.Random(f"{seed}-{name}-buffer-{reader}-{tag}").getstate(),
                    "buffer": in_flight[dataset][reader::new_count],
                    "segments": [(s.url, s.first, s.end) for s in cut(segments, reader, new_count)],
                }
            )
        skips = {reason: _share(count, reader, new_count) for reason, count in skip_counts.items()}
        states.append(
            {
                "format": STATE_FORMAT,
                "reader": reader,
                "num_readers": new_count,
                "streams": streams,
                "mixture_rng": random.Random(f"{seed}-mixture-{reader}-{tag}").getstate(),
                "pending": [],
                "ready": [],
                "skips": {
                    "counts": skips,
                    "recent": [],
                    "consecutive": {"read": 0, "decode": 0},
                    "windows": {},
                },
                "num_arrivals": 0,
                "num_packs": len(range(slot, consumed, slots)),  # the packs this worker made of the rank's
                "num_replanned": 0,
                "num_packed": [_share(total, reader, new_count) for total in packed],
            }
        )
    return {
        "rank": rank,
        "world_size": world_size,
        "num_workers": num_workers,
        "consumed": consumed,
        "readers": states,
    }
