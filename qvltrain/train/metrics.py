"""Per-step throughput accounting: real tokens, slots, samples, patches and model FLOPs."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import torch

from qvltrain.batch import PackedBatch
from qvltrain.model.family import FlopModel
from qvltrain.train.flops import training_flops


@dataclass
class StepCounts:
    """Summed over the micro-batches of a step on one rank (all-reduced before logging)."""

    real_tokens: float = 0.0
    slots: float = 0.0
    samples: float = 0.0
    patches: float = 0.0
    flops: float = 0.0

    def add_batch(self, batch: PackedBatch, shape: FlopModel, trainable: list[str], pad_id: int) -> None:
        lengths = (batch.cu_seqlens[1:] - batch.cu_seqlens[:-1]).tolist()
        starts = batch.cu_seqlens[:-1].tolist()
        input_ids = batch.input_ids[0]
        # Tail padding is a segment of pad tokens only; it costs time but is not useful work.
        segments = [
            n
            for n, s in zip(lengths, starts, strict=True)
            if not bool((input_ids[s : s + n] == pad_id).all())
        ]
        grids = batch.grid_thw.tolist() if batch.grid_thw is not None else []
        self.real_tokens += batch.num_real_tokens
        self.slots += batch.input_ids.numel()
        self.samples += len(batch.keys)
        self.patches += sum(t * h * w for t, h, w in grids)
        self.flops += training_flops(shape, segments, sum(segments), grids, trainable)

    def as_list(self) -> list[float]:
        return [getattr(self, item.name) for item in fields(self)]

    @classmethod
    def from_list(cls, values: list[float]) -> StepCounts:
        return cls(*values)


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


class WaitClock:
    """How much of a span this rank spent working, and waiting (at the step's collectives).

    On a CPU rank, work is CPU time: this process's CPU seconds over the span divided by torch's
    intra-op threads; the rest of the wall time is time blocked in gloo's collectives (ZeRO-3's
    parameter gathers and gradient reductions wait there for the slowest rank). Exact with one torch
    thread per rank on otherwise idle cores; on a busy machine, time the rank was descheduled counts
    as waiting too, so the trainer also logs the ranks' work balance (mean / max work), which a
    busy machine does not inflate. None on a GPU, where the host's CPU time is not the device's work.
    """

    def __init__(self, device: torch.device):
        self.enabled = device.type == "cpu"
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float] | None:
        """(work seconds, wait seconds >= 0) since construction, or None on a GPU."""
        if not self.enabled:
            return None
        wall = time.perf_counter() - self.wall
        work = (time.process_time() - self.cpu) / max(1, torch.get_num_threads())
        return work, max(0.0, wall - work)
