"""One reader's whole pipeline: datasets -> mixture -> plan from metadata -> decode -> packs.

    pipeline = ReaderPipeline(setup, reader, num_readers)
    pack = pipeline.next_pack()          # a PackedBatch of exactly seq_len tokens
    state = pipeline.state_dict()        # exact: loading it into a fresh pipeline continues identically

A sample is admitted by parsing its KEY.json and reading its size from `meta.num_tokens` (and
`meta.num_patches`, or the image sizes under the dataset's budget); it is decoded only when its pack
is final. A sample whose real size exceeds what its metadata said, so that its pack would overflow,
goes back to the planner with its true size (counted as `replanned`); nothing is ever truncated in a pack
or dropped silently. Samples without `meta.num_tokens` are decoded at admission (slower, exact).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from qvltrain.batch import PackedBatch
from qvltrain.data.balance import CostModel, decoded_slices, planned_slices, take, target_quantile
from qvltrain.data.batch import PackAssembler
from qvltrain.data.config import DataConfig, DatasetConfig
from qvltrain.data.decode import BadSample, DecodedSample, SampleDecoder, parse_record
from qvltrain.data.packer import Budget, PlanItem, WindowedBestFitDecreasing
from qvltrain.data.reader import RawSample
from qvltrain.data.skips import SkipLog
from qvltrain.data.stream import DatasetStream, _as_rng_state, reread
from qvltrain.vision.errors import VisualInputError
from qvltrain.vision.tokens import image_grid

STATE_FORMAT = 2
"""2: fair epochs (a reader reads a slice of samples, data.stream) and the realised mixture."""


@dataclass
class PipelineSetup:
    """Everything a reader needs, picklable (it travels to DataLoader workers)."""

    config: DataConfig
    datasets: list[DatasetConfig]
    shards: list[list[str]]
    """All shards of each dataset (expanded once, in the main process)."""
    counts: list[list[int]]
    """Samples per shard of each dataset (fair epochs split by samples, data.stream)."""
    decoders: list[SampleDecoder]
    pad_id: int
    cost_model: CostModel | None = None
    """Sample costs for `data.balance_lookahead` (None: Qwen2-VL-2B FLOPs, qvltrain/data/balance.py)."""


@dataclass
class _Admitted:
    raw: RawSample
    dataset: int
    record: dict
    item: PlanItem
    decoded: DecodedSample | None = None


class ReaderPipeline:
    def __init__(self, setup: PipelineSetup, reader: int, num_readers: int):
        config = setup.config
        self.setup, self.reader, self.num_readers = setup, reader, num_readers
        self.budget = Budget(seq_len=config.seq_len, max_patches=config.max_patches)
        self.skips = SkipLog(config.max_consecutive_failures, config.max_skip_fraction, config.skip_window)
        self.streams = [
            DatasetStream(
                d.name, shards, counts, config.seed, reader, num_readers, config.shuffle_buffer, self.skips
            )
            for d, shards, counts in zip(setup.datasets, setup.shards, setup.counts, strict=True)
        ]
        self.weights = [d.weight for d in setup.datasets]
        self.mixture_rng = random.Random(f"{config.seed}-mixture-{reader}")
        # Balance (qvltrain/data/balance.py): keep `lookahead` planned packs and take, for this rank's
        # k-th pack, the one at the shared quantile q_k of their costs. This reader makes the rank's
        # packs k = n * slots + slot (DataLoader workers take turns, data.loader).
        self.lookahead = config.balance_lookahead
        self.slots = max(1, config.num_workers)
        self.slot = reader % self.slots
        self.cost_model = setup.cost_model or CostModel()
        self.planner = WindowedBestFitDecreasing(
            self.budget, window=config.pack_window, min_ready=max(1, self.lookahead)
        )
        self.admitted: dict[int, _Admitted] = {}  # by arrival: every sample in the planner
        self.num_arrivals = 0
        self.num_packs = 0
        self.num_replanned = 0
        # Samples in finished packs, by dataset: the realised mixture (`mixture/<dataset>` in the metrics).
        self.num_packed = [0] * len(self.streams)

    # --- admission: metadata only -------------------------------------------------------------
    def _planned_patches(self, record: dict, dataset: DatasetConfig, num_tokens: int) -> int:
        meta = record.get("meta") or {}
        if isinstance(meta.get("num_patches"), int):
            return meta["num_patches"]
        kinds = [
            item.get("type")
            for message in record["messages"]
            if isinstance(message, dict) and isinstance(message.get("content"), list)
            for item in message["content"]
            if isinstance(item, dict) and item.get("type") in ("image", "video")
        ]
        sizes = meta.get("image_sizes") or []
        if "video" not in kinds and len(sizes) == len(kinds):
            try:
                return sum(
                    t * h * w for t, h, w in (image_grid(hh, ww, dataset.image_budget) for ww, hh in sizes)
                )
            except (VisualInputError, TypeError, ValueError):
                pass  # decoding will tell (and skip it if it is bad)
        return 4 * num_tokens  # every token visual: an upper bound, corrected after decoding

    def _admit_one(self) -> None:
        index = self.mixture_rng.choices(range(len(self.streams)), self.weights)[0]
        raw = self.streams[index].next()
        dataset, decoder = self.setup.datasets[index], self.setup.decoders[index]
        try:
            record = parse_record(raw.members.get("json"), raw.key, raw.url)
            num_tokens = (record.get("meta") or {}).get("num_tokens")
            decoded = None
            if not isinstance(num_tokens, int) or num_tokens <= 0:
                decoded = self._decode(decoder, record, raw)  # a failure here counts as a read failure
                num_tokens, num_patches = len(decoded.input_ids), decoded.num_patches
            else:
                num_patches = self._planned_patches(record, dataset, num_tokens)
        except BadSample as error:
            self.skips.skip(
                error.reason, error.key, error.shard, str(error), stage="read", dataset=dataset.name
            )
            return
        self.skips.success("read")
        item = PlanItem(
            key=raw.key,
            num_tokens=max(1, min(num_tokens, self.budget.seq_len)),
            num_patches=min(num_patches, self.budget.max_patches),
            arrival=self.num_arrivals,
        )
        if self.lookahead:
            if decoded is not None:
                slices = decoded_slices(decoded.patches)
            else:
                video = dataset.video_budget
                frame_patches = (video.max_pixels if video else dataset.image_budget.max_pixels) // 196
                slices = planned_slices(record, dataset.image_budget, frame_patches, item.num_patches)
            item.cost = self.cost_model.sample_cost(item.num_tokens, slices)
        self.admitted[item.arrival] = _Admitted(raw, index, record, item, decoded)
        self.num_arrivals += 1
        self.planner.add(item)

    def _decode(self, decoder: SampleDecoder, record: dict, raw: RawSample) -> DecodedSample:
        decoded = decoder.decode(record, raw.members, raw.key, raw.url)
        if decoded.num_patches > self.budget.max_patches:
            raise BadSample(
                "too_many_patches", raw.key, raw.url,
                f"{decoded.num_patches} ViT rows > data.max_patches={self.budget.max_patches}",
            )  # fmt: skip
        return decoded

    # --- emission: decode the planned pack ---------------------------------------------------
    def next_pack(self) -> PackedBatch:
        if self.lookahead:
            while len(self.planner.ready) < self.lookahead:
                self._admit_one()
            pack_index = self.num_packs * self.slots + self.slot  # the rank's pack index
            plan = take(self.planner.ready, target_quantile(self.setup.config.seed, pack_index))
        else:
            while (plan := self.planner.pop()) is None:
                self._admit_one()
        pack = PackAssembler(self.budget.seq_len, self.setup.pad_id)
        for item in plan:
            admitted = self.admitted.pop(item.arrival)
            try:
                decoded = admitted.decoded or self._decode(
                    self.setup.decoders[admitted.dataset], admitted.record, admitted.raw
                )
            except BadSample as error:
                self.skips.skip(
                    error.reason, error.key, error.shard, str(error), stage="decode",
                    dataset=self.setup.datasets[admitted.dataset].name,
                )  # fmt: skip
                continue
            self.skips.success("decode")
            if not pack.fits(decoded, self.budget.max_patches):
                # The metadata under-stated this sample: plan it again at its true size.
                admitted.item = PlanItem(item.key, len(decoded.input_ids), decoded.num_patches, item.arrival)
                if self.lookahead:
                    admitted.item.cost = self.cost_model.sample_cost(
                        admitted.item.num_tokens, decoded_slices(decoded.patches)
                    )
                admitted.decoded = None
                self.admitted[item.arrival] = admitted
                self.planner.pending.append(admitted.item)
                self.num_replanned += 1
                continue
            pack.add(decoded)
            self.num_packed[admitted.dataset] += 1
            self.skips.kept(self.setup.datasets[admitted.dataset].name)
        self.num_packs += 1
        return pack.finish()

    # --- state -----------------------------------------------------------------------------
    def _ref(self, item: PlanItem) -> tuple:
        admitted = self.admitted[item.arrival]
        raw = admitted.raw
        return (
            admitted.dataset,
            raw.url,
            raw.ordinal,
            raw.key,
            item.arrival,
            item.num_tokens,
            item.num_patches,
            item.cost,
        )

    def state_dict(self) -> dict:
        return {
            "format": STATE_FORMAT,
            "reader": self.reader,
            "num_readers": self.num_readers,
            "streams": [stream.state_dict() for stream in self.streams],
            "mixture_rng": self.mixture_rng.getstate(),
            "pending": [self._ref(item) for item in self.planner.pending],
            "ready": [[self._ref(item) for item in pack] for pack in self.planner.ready],
            "skips": self.skips.state_dict(),
            "num_arrivals": self.num_arrivals,
            "num_packs": self.num_packs,
            "num_replanned": self.num_replanned,
            "num_packed": list(self.num_packed),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != STATE_FORMAT or (state["reader"], state["num_readers"]) != (
            self.reader,
            self.num_readers,
        ):
            raise ValueError(
                f"data state of reader {state.get('reader')}/{state.get('num_readers')} (format "
                f"{state.get('format')}) cannot load into reader {self.reader}/{self.num_readers}: resume "
                "with the same world size and data.num_workers"
            )
        for stream, stream_state in zip(self.streams, state["streams"], strict=True):
            stream.load_state_dict(stream_state)
        self.mixture_rng.setstate(_as_rng_state(state["mixture_rng"]))
        self.skips.load_state_dict(state["skips"])
        self.num_arrivals, self.num_packs = state["num_arrivals"], state["num_packs"]
        self.num_replanned = state["num_replanned"]
        self.num_packed = list(state["num_packed"])
        refs = list(state["pending"]) + [ref for pack in state["ready"] for ref in pack]
        raws = reread([(url, ordinal, key) for _, url, ordinal, key, *_ in refs])
        self.admitted = {}
        for ref, raw in zip(refs, raws, strict=True):
            dataset, _, _, key, arrival, num_tokens, num_patches, *cost = ref  # cost: the balance's
            record = parse_record(raw.members.get("json"), raw.key, raw.url)
            item = PlanItem(key, num_tokens, num_patches, arrival, *cost)
            self.admitted[arrival] = _Admitted(raw, dataset, record, item)
        self.planner.pending = [self.admitted[ref[4]].item for ref in state["pending"]]
        self.planner.ready.clear()
        self.planner.ready.extend([self.admitted[ref[4]].item for ref in pack] for pack in state["ready"])
