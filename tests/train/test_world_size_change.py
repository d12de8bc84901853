"""Resuming on another number of ranks (train.checkpoint.allow_world_size_change), on real ZeRO-3 CPU
runs: 2 ranks save, 1 rank resumes, 2 ranks resume again. At each load the weights (trained and
frozen) equal the saved ones, the Adam moments and step counts carry over, the module groups keep
their learning rates and weight decay, training goes on with a finite loss, and over the three runs
no sample of the epoch in progress is trained twice or lost (checked by sample keys)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from qvltrain.data.reader import iter_samples
from qvltrain.data.resize import leftover
from qvltrain.data.shards import expand_shards, shard_sample_counts
from qvltrain.train.export import load_consolidated_model
from tests.train.test_resume_export import finish, launch, per_step

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]

ENTRY = "tests/train/recording_entry.py"  # launch/train.py recording weights, moments and sample keys
STAGE = "vit_pretrain"  # the LLM is frozen: frozen weights must come back too
COMMON = [
    "data.pack_window=8",  # few samples read ahead, so three short runs stay inside the first epoch
    "data.shuffle_buffer=4",
    "stage.lr_vision_tower=5.0e-4",  # groups with different learning rates (merger: 2e-3)
    "train.checkpoint.allow_world_size_change=true",
    "train.checkpoint.keep_last=0",
]


def run(run_dir: Path, shards: Path, record: Path, num_ranks: int, max_steps: int) -> str:
    process = launch(
        run_dir,
        shards,
        STAGE,
        [f"train.max_steps={max_steps}", *COMMON],
        env={"QVLTRAIN_TEST_RECORD": str(record)},
        entry=ENTRY,
        num_ranks=num_ranks,
    )
    return finish(process)


def saved_moments(step_dir: Path) -> dict:
    """Sums of squares of the Adam moments over every rank's saved ZeRO partition, and the steps."""
    exp_avg = exp_avg_sq = 0.0
    steps = []
    for path in sorted((step_dir / "deepspeed" / "state").glob("*optim_states.pt")):
        saved = torch.load(path, map_location="cpu", weights_only=False)["optimizer_state_dict"]
        for state in saved["optimizer_state_dict"]["state"].values():
            exp_avg += float(state["exp_avg"].double().pow(2).sum())
            exp_avg_sq += float(state["exp_avg_sq"].double().pow(2).sum())
            steps.append(int(state["step"]))
    return {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "steps": steps}


def check_loaded(record: Path, step_dir: Path, num_ranks: int, groups: list[dict]) -> None:
    """What the resumed engine held right after loading `step_dir`."""
    loaded = torch.load(record / "weights.pt", weights_only=False)
    saved = load_consolidated_model(str(step_dir)).state_dict()
    frozen = [name for name in loaded if name.startswith("model.language_model.")]
    assert frozen and any(name.startswith("model.visual.merger.") for name in loaded)
    assert set(loaded) <= set(saved)
    for name, tensor in loaded.items():
        assert torch.equal(tensor, saved[name].float()), name
    moments = [torch.load(record / f"moments_rank{rank}.pt", weights_only=False) for rank in range(num_ranks)]
    expected = saved_moments(step_dir)
    step = int(step_dir.name.removeprefix("step_"))
    assert expected["exp_avg"] > 0 and expected["exp_avg_sq"] > 0 and set(expected["steps"]) == {step}
    for key in ("exp_avg", "exp_avg_sq"):
        assert sum(m[key] for m in moments) == pytest.approx(expected[key], rel=1e-9), key
    assert all(set(m["steps"]) == {step} for m in moments)
    assert all(m["groups"] == groups for m in moments)  # names, peak lrs and weight decay as configured


def trained_keys(*records: Path) -> Counter:
    keys: Counter = Counter()
    for record in records:
        for path in record.glob("keys_rank*.jsonl"):
            for line in path.read_text().splitlines():
                keys.update(json.loads(line)["keys"])
    return keys


def unfinished(step_dir: Path, shards: Path) -> tuple[int, Counter]:
    """(newest epoch in progress, keys read but not yet trained + keys not yet read of epochs up to it)
    from a checkpoint's data states."""
    readers = []
    for path in sorted(step_dir.glob("rank_*.pt")):
        readers += torch.load(path, weights_only=False)["data"]["readers"]
    keys: Counter = Counter()
    for reader in readers:
        keys.update(key for _, _, key in reader["streams"][0]["buffer"])
        keys.update(ref[3] for ref in reader["pending"] + [r for pack in reader["ready"] for r in pack])
    urls = expand_shards(str(shards / "train"))
    epoch, rest = leftover([r["streams"][0] for r in readers], urls, shard_sample_counts(urls), 0, "shapes")
    for segment in rest:
        keys.update(s.key for s in iter_samples(segment.url, segment.first) if s.ordinal < segment.end)
    return epoch, keys


def test_two_ranks_save_one_resumes_then_two_again(tmp_path: Path, synthetic_shards: Path) -> None:
    run_dir, checkpoints = tmp_path / "run", tmp_path / "run" / "checkpoints"
    records = [tmp_path / f"record{n}" for n in range(3)]
    run(run_dir, synthetic_shards, records[0], num_ranks=2, max_steps=2)
    groups = torch.load(records[0] / "moments_rank0.pt", weights_only=False)["groups"]
    assert {group["peak_lr"] for group in groups} == {5.0e-4, 2.0e-3}
    assert {group["weight_decay"] for group in groups} == {0.0, groups[0]["weight_decay"]} != {0.0}

    output = run(run_dir, synthetic_shards, records[1], num_ranks=1, max_steps=4)
    assert (
        f"resumed from {checkpoints / 'step_000002'} at step 2 (written by 2 ranks, re-split for 1)" in output
    )
    check_loaded(records[1], checkpoints / "step_000002", 1, groups)
    # the step counts advance by one per step (DeepSpeed's loader shares one counter among groups)
    assert set(saved_moments(checkpoints / "step_000004")["steps"]) == {4}

    output = run(run_dir, synthetic_shards, records[2], num_ranks=2, max_steps=6)
    assert "(written by 1 ranks, re-split for 2)" in output
    check_loaded(records[2], checkpoints / "step_000004", 2, groups)

    steps = per_step(run_dir)
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(steps[step]["loss"]) and steps[step]["loss_tokens"] > 0 for step in steps)
    # Every sample of the epoch in progress: trained once, or still ahead in the last checkpoint.
    trained = trained_keys(*records)
    epoch, ahead = unfinished(checkpoints / "step_000006", synthetic_shards)
    assert epoch == 0 and max(trained.values()) == 1  # three short runs inside the first epoch
    every = Counter(
        s.key for url in expand_shards(str(synthetic_shards / "train")) for s in iter_samples(url)
    )
    assert trained + ahead == every
