"""Recipe machinery: source records -> validated, token-counted samples -> deterministic shards.

A recipe lists its source records (cheap, in the main process) and gives a picklable converter
`record -> RecipeSample`. `write_recipe_shards` converts records on a process pool, takes results
in input order (`imap`), and a single writer in the main process writes them, so the bytes do not
depend on the number of workers. A record that fails is reported with where it came from (line or
array index) and skipped; the skips are counted by reason in the summary and in
`<prefix>.recipe.json`. After writing, the whole output is validated (docs/shard-format.md).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from qvltrain.shards.check import check_shards
from qvltrain.shards.schema import check_sample
from qvltrain.shards.token_count import TokenCounter, TokenSettings
from qvltrain.shards.writer import ShardWriter
from qvltrain.text.errors import SkipSample
from qvltrain.vision.errors import VisualInputError


class BadRecord(ValueError):
    """A source record a converter cannot turn into a sample; counted by `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class SourceRecord:
    """One unit of input: where it came from (for reports) and what the converter reads."""

    where: str
    """E.g. "captions.json: annotations[12]" or "train.jsonl: line 7"."""
    payload: Any
    """Picklable input of the converter (a parsed JSON record, a generation spec, ...)."""


@dataclass(frozen=True)
class UnparsableRecord:
    """Payload of an input line that is not JSON: reported as a bad record, never given to a converter."""

    detail: str


@dataclass
class RecipeSample:
    """A converted sample before token counting: KEY.json without counts, and its media members."""

    sample: dict
    media: dict[str, bytes] = field(default_factory=dict)


Converter = Callable[[Any], RecipeSample]


@dataclass
class ShardOptions:
    """Where and how shards are written."""

    out_dir: str
    """Folder receiving `<prefix>-NNNNNN.tar`, `<prefix>.index.json` and `<prefix>.recipe.json`."""
    prefix: str = "train"
    """Shard name prefix, also the sample key prefix."""
    samples_per_shard: int = 1000
    """Most samples in one shard."""
    shard_bytes: int = 1 << 30
    """Most bytes in one shard (a larger single sample gets a shard of its own)."""
    num_workers: int = 1
    """Converter processes; 1 converts in this process. Output bytes are the same for any value."""
    progress: bool = True
    """Show a progress bar on stderr."""

    def __post_init__(self) -> None:
        if self.samples_per_shard <= 0 or self.shard_bytes <= 0:
            raise ValueError("ShardOptions.samples_per_shard and shard_bytes must be positive")
        if self.num_workers < 1:
            raise ValueError(f"ShardOptions.num_workers must be >= 1, got {self.num_workers}")
        if "." in self.prefix or "/" in self.prefix or not self.prefix:
            raise ValueError(f"ShardOptions.prefix {self.prefix!r} must be non-empty without '.' or '/'")


@dataclass
class WriteSummary:
    """What a recipe run wrote and skipped."""

    num_records: int
    counts: dict[str, int]
    """Shard file name -> samples."""
    skipped: Counter
    """Reason -> bad records skipped."""
    bad_records: list[str]
    """One line per skipped record: where, reason, detail."""

    @property
    def num_samples(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items()))
        return (
            f"{self.num_samples} samples in {len(self.counts)} shards from {self.num_records} records; "
            f"skipped {sum(self.skipped.values())}" + (f" ({skipped})" if skipped else "")
        )


@dataclass
class _Outcome:
    index: int
    sample: dict | None = None
    media: dict[str, bytes] | None = None
    reason: str | None = None
    detail: str = ""


# Per process: the converter and the token counter (whose tokenizer loads once per worker).
_state: dict[str, Any] = {}


def _init_worker(converter: Converter, settings: TokenSettings, source: str) -> None:
    _state.update(converter=converter, counter=TokenCounter(settings), source=source)
    try:
        import torch

        torch.set_num_threads(1)  # one worker per core: intra-op threads would only oversubscribe
    except ImportError:  # pragma: no cover - torch is a dependency; kept for a clear failure elsewhere
        pass


def _failure_reason(error: Exception) -> str:
    if isinstance(error, BadRecord | SkipSample | VisualInputError):
        return error.reason
    if isinstance(error, FileNotFoundError):
        return "missing_file"
    return "invalid_record"


def _convert(job: tuple[int, Any]) -> _Outcome:
    index, payload = job
    try:
        if isinstance(payload, UnparsableRecord):
            raise BadRecord("invalid_json", payload.detail)
        converted = _state["converter"](payload)
        sample = converted.sample
        sample.setdefault("meta", {})["source"] = _state["source"]
        sample["meta"]["num_tokens"] = 1  # placeholder so the schema check runs before counting
        problems = check_sample(sample, set(converted.media))
        if problems:
            raise BadRecord("schema", "; ".join(problems[:3]))
        _state["counter"].annotate(sample, f"record {index}")
        return _Outcome(index, sample=sample, media=converted.media)
    # User data fails in many shapes (missing keys, wrong types, unreadable files): each is a
    # counted bad record with its detail, never a crash of the whole run.
    except (BadRecord, SkipSample, VisualInputError, KeyError, TypeError, ValueError, OSError) as error:
        if isinstance(error, KeyError):
            detail = f"missing field {error}"
        elif isinstance(error, BadRecord | SkipSample):
            detail = error.detail
        else:
            detail = str(error)
        return _Outcome(index, reason=_failure_reason(error), detail=detail[:300])


def _outcomes(records: Sequence[SourceRecord], converter, settings, source, num_workers):
    jobs = ((index, record.payload) for index, record in enumerate(records))
    if num_workers == 1:
        _init_worker(converter, settings, source)
        yield from map(_convert, jobs)
        return
    # fork: workers inherit imported modules (fast start); spawn would re-import torch per worker.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with context.Pool(num_workers, initializer=_init_worker, initargs=(converter, settings, source)) as pool:
        yield from pool.imap(_convert, jobs, chunksize=8)


def write_recipe_shards(
    records: Sequence[SourceRecord],
    converter: Converter,
    settings: TokenSettings,
    options: ShardOptions,
    source: str,
    recipe_args: dict | None = None,
) -> WriteSummary:
    """Convert, count, write and validate; raises RuntimeError if the written shards do not validate."""
    skipped: Counter = Counter()
    bad_records: list[str] = []
    bar = tqdm(
        total=len(records), desc=f"{source}/{options.prefix}", unit="rec", disable=not options.progress,
        file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip
    writer = ShardWriter(options.out_dir, options.prefix, options.samples_per_shard, options.shard_bytes)
    with writer:
        for outcome in _outcomes(records, converter, settings, source, options.num_workers):
            bar.update(1)
            if outcome.reason is not None:
                line = f"{records[outcome.index].where}: {outcome.reason}: {outcome.detail}"
                skipped[outcome.reason] += 1
                bad_records.append(line)
                bar.write(f"skipped {line}", file=sys.stderr)
                continue
            writer.write(f"{options.prefix}_{outcome.index:08d}", outcome.sample, outcome.media)
    bar.close()
    summary = WriteSummary(len(records), dict(writer.counts), skipped, bad_records)
    remove_stale_shards(options, set(summary.counts))
    write_recipe_file(options, settings, source, summary, recipe_args or {})
    if summary.num_samples:
        written = "::".join(os.path.join(options.out_dir, name) for name in summary.counts)
        report = check_shards(written)
        if not report.ok:
            raise RuntimeError(f"recipe {source} wrote invalid shards: {report.errors[:5]}")
    return summary


def remove_stale_shards(options: ShardOptions, written: set[str]) -> None:
    """Delete `<prefix>-NNNNNN.tar` left by an earlier, larger run: a folder spec would train on them."""
    pattern = re.compile(rf"{re.escape(options.prefix)}-\d{{6}}\.tar")
    for name in sorted(os.listdir(options.out_dir)):
        if pattern.fullmatch(name) and name not in written:
            os.remove(os.path.join(options.out_dir, name))
            print(f"removed stale shard {name} from an earlier run", file=sys.stderr)


def write_recipe_file(
    options: ShardOptions, settings: TokenSettings, source: str, summary: WriteSummary, recipe_args: dict
) -> None:
    """`<prefix>.recipe.json`: the settings num_tokens was counted with, and the run's summary."""
    recipe = {
        "source": source,
        "token_settings": settings.to_dict(),
        "arguments": recipe_args,
        "num_records": summary.num_records,
        "num_samples": summary.num_samples,
        "skipped": dict(sorted(summary.skipped.items())),
    }
    with open(os.path.join(options.out_dir, f"{options.prefix}.recipe.json"), "w") as recipe_file:
        json.dump(recipe, recipe_file, indent=1, sort_keys=True)
        recipe_file.write("\n")
