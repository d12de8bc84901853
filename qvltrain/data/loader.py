"""A rank's micro-batches: its readers (in process, or one per DataLoader worker), interleaved in order.

    batches = TrainBatches(data_config, template, tokenizer, rank, world_size, position_rule="paper")
    batch = next(batches)                 # PackedBatch of micro_batch_size * seq_len tokens
    state = batches.state_dict()          # per rank; load_state_dict on a fresh object resumes exactly

Reader r of rank k is global reader k * W + r (W = max(1, num_workers)). Workers yield in strict
rotation (the DataLoader's in-order mode), so the main process knows which worker made each pack;
every pack carries its worker's state right after making it. The rank's state is those states plus
the number of packs consumed, which also says which worker comes next; a restart rotates the
workers so that one yields first. Packs a worker had prefetched but the trainer never took are
simply made again after a resume.

Every rank reads forever (epochs repeat; the trainer stops at max_steps), so every rank always yields
the same number of micro-batches per step, also at the end of an epoch (invariant 3).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from qvltrain.batch import PackedBatch
from qvltrain.data.balance import CostModel
from qvltrain.data.batch import concat_packs
from qvltrain.data.config import DataConfig
from qvltrain.data.decode import SampleDecoder
from qvltrain.data.pipeline import PipelineSetup, ReaderPipeline
from qvltrain.data.resize import resized_rank_state
from qvltrain.data.shards import expand_shards, shard_sample_counts
from qvltrain.data.stream import check_split
from qvltrain.text.tokenizer import TokenizerInfo


def _keep(item):
    return item


class _ReaderDataset(IterableDataset):
    """In worker w: the pipeline of logical worker (w + offset) % W, from its saved state."""

    def __init__(self, setup: PipelineSetup, rank: int, world_size: int, states: list, offset: int):
        self.setup, self.rank, self.world_size = setup, rank, world_size
        self.states, self.offset = states, offset

    def __iter__(self) -> Iterator[tuple[PackedBatch, int, dict]]:
        info = get_worker_info()
        num_workers = len(self.states)
        logical = ((info.id if info else 0) + self.offset) % num_workers
        pipeline = ReaderPipeline(
            self.setup, self.rank * num_workers + logical, self.world_size * num_workers
        )
        if self.states[logical] is not None:
            pipeline.load_state_dict(self.states[logical])
        while True:
            pack = pipeline.next_pack()
            yield pack, logical, pipeline.state_dict()


class TrainBatches:
    """Iterator of PackedBatch for one rank, with exact state_dict / load_state_dict."""

    def __init__(
        self,
        config: DataConfig,
        template: str,
        tokenizer,
        rank: int,
        world_size: int,
        datasets=None,
        position_rule: str = "paper",
        cost_model: CostModel | None = None,
        render_options: Mapping[str, Any] | None = None,
    ):
        datasets = config.train if datasets is None else datasets
        if not datasets:
            raise ValueError("data.train lists no dataset")
        info = TokenizerInfo.from_tokenizer(tokenizer)
        self.config, self.rank, self.world_size = config, rank, world_size
        self.num_workers = config.num_workers
        num_logical = max(1, config.num_workers)
        shards = [expand_shards(d.shards) for d in datasets]
        counts = [shard_sample_counts(dataset_shards) for dataset_shards in shards]
        for dataset, dataset_counts in zip(datasets, counts, strict=True):
            check_split(dataset.name, dataset_counts, world_size * num_logical)
        self.setup = PipelineSetup(
            config=config,
            datasets=list(datasets),
            shards=shards,
            counts=counts,
            decoders=[
                SampleDecoder(d, template, info, config.seq_len, position_rule, render_options)
                for d in datasets
            ],
            pad_id=info.special.pad,
            # The balance's sample costs (data.balance_lookahead): the model's FLOPs (default
            # Qwen2-VL-2B's) times the calibrated seconds per FLOP of each term.
            cost_model=(cost_model or CostModel()).scaled(config.balance_calibration),
        )
        self._states: list[dict | None] = [None] * num_logical
        self._consumed = 0
        self._local: ReaderPipeline | None = None
        self._iterator: Iterator | None = None

    def __iter__(self) -> TrainBatches:
        return self

    def __next__(self) -> PackedBatch:
        return concat_packs([self._next_pack() for _ in range(self.config.micro_batch_size)])

    def _next_pack(self) -> PackedBatch:
        if self.num_workers == 0:
            if self._local is None:
                self._local = ReaderPipeline(self.setup, self.rank, self.world_size)
                if self._states[0] is not None:
                    self._local.load_state_dict(self._states[0])
            self._consumed += 1
            return self._local.next_pack()
        if self._iterator is None:
            dataset = _ReaderDataset(
                self.setup, self.rank, self.world_size, list(self._states), self._consumed % self.num_workers
            )
            loader = DataLoader(
                dataset,
                batch_size=None,
                num_workers=self.num_workers,
                collate_fn=_keep,
                pin_memory=torch.cuda.is_available(),
                prefetch_factor=2,
            )
            self._iterator = iter(loader)
        pack, logical, state = next(self._iterator)
        assert logical == self._consumed % self.num_workers, "workers out of rotation"
        self._states[logical] = state
        self._consumed += 1
        return pack

    def state_dict(self) -> dict:
        """This rank's data state (small: sample references, cursors, RNG, counters)."""
        states = [self._local.state_dict()] if self._local is not None else list(self._states)
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "num_workers": self.num_workers,
            "consumed": self._consumed,
            "readers": states,
        }

    def resumes_exactly(self, state: dict) -> bool:
        """Whether `state` is this rank's under the same split (else: load_resized_state)."""
        return (state["rank"], state["world_size"], state["num_workers"]) == (
            self.rank,
            self.world_size,
            self.num_workers,
        )

    def load_state_dict(self, state: dict) -> None:
        if not self.resumes_exactly(state):
            saved = (state["world_size"], state["num_workers"])
            raise ValueError(
                f"data state of rank {state['rank']} (world size {saved[0]}, data.num_workers {saved[1]}) "
                f"cannot resume rank {self.rank} (world size {self.world_size}, num_workers "
                f"{self.num_workers}) exactly: shards are split by both; resume with the same values, or "
                "with train.checkpoint.allow_world_size_change=true (each epoch goes on, in another order)"
            )
        self.close()
        self._states = list(state["readers"])
        self._consumed = state["consumed"]

    def load_resized_state(self, states: list[dict]) -> None:
        """Resume from every rank's state of a run with another world size or num_workers: each
        dataset's epoch goes on without repeating or losing a sample (data.resize)."""
        self.load_state_dict(
            resized_rank_state(states, self.setup, self.rank, self.world_size, self.num_workers)
        )

    def close(self) -> None:
        """Stop the workers (a new iterator starts on the next batch)."""
        self._iterator = None
        self._local = None

    @property
    def mixture(self) -> Counter:
        """Samples in the packs consumed so far, by dataset name, over this rank's readers."""
        if self._local is not None:
            per_reader = [self._local.num_packed]
        else:
            per_reader = [state["num_packed"] for state in self._states if state is not None]
        total: Counter = Counter({dataset.name: 0 for dataset in self.setup.datasets})
        for counts in per_reader:
            for dataset, count in zip(self.setup.datasets, counts, strict=True):
                total[dataset.name] += count
        return total

    @property
    def skips(self) -> Counter:
        """Skipped samples by reason, over this rank's readers (as of the packs consumed)."""
        if self._local is not None:
            return Counter(self._local.skips.counts)
        total: Counter = Counter()
        for state in self._states:
            if state is not None:
                total.update(state["skips"]["counts"])
        return total
