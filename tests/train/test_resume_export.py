"""Issue-7 guarantees on real 2-rank ZeRO-3 CPU runs: exact resume after kill -9, crash while
checkpointing, frozen weights, non-finite loss on one rank, and HF export equal to the engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qvltrain.train.distributed import free_port
from tests.conftest import REPO_ROOT, deadline_s, read_jsonl

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]

FAULTY_ENTRY = "tests/train/faulty_entry.py"  # launch/train.py with a NaN loss injected by the test


def launch(
    run_dir: Path,
    shards: Path,
    stage: str,
    extra: list[str],
    env: dict | None = None,
    entry: str = "launch/train.py",
    num_ranks: int = 2,
) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "deepspeed"),
        "--num_gpus",
        str(num_ranks),
        "--master_port",
        str(free_port()),
        entry,
        f"+stage={stage}",
        f"train.run_dir={run_dir}",
        "logger=none",
        f"data.train.0.shards={shards / 'train'}",
        f"data.validation.0.shards={shards / 'validation'}",
        "train.schedule.warmup_steps=2",
        *extra,
    ]
    full_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **(env or {})}
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, expect_ok: bool = True) -> str:
    output, _ = process.communicate(timeout=deadline_s(600))
    if expect_ok:
        assert process.returncode == 0, output[-5000:]
    return output


def per_step(run_dir: Path) -> dict[int, dict]:
    """The last record of each step (a resumed run repeats the steps after its checkpoint)."""
    return {record["step"]: record for record in read_jsonl(run_dir / "metrics.jsonl")}


def is_descendant(pid: int, ancestor: int) -> bool:
    """Whether `ancestor` is on pid's parent chain (read from /proc, no command-line matching)."""
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after "(comm)" state is the ppid
    return False


def rank_pids(launcher: subprocess.Popen, run_dir: Path, world_size: int = 2) -> list[int]:
    """The pids the ranks published in RUN/ranks/ (checked to be this launcher's descendants)."""
    records = [
        json.loads((run_dir / "ranks" / f"rank_{rank}.json").read_text()) for rank in range(world_size)
    ]
    pids = [record["pid"] for record in records]
    assert all(is_descendant(pid, launcher.pid) for pid in pids), (pids, launcher.pid)
    return pids


@pytest.fixture(scope="module")
def reference(tmp_path_factory, synthetic_shards: Path) -> dict[int, dict]:
    """An uninterrupted run of 8 steps."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    finish(launch(run_dir, synthetic_shards, "full_pretrain", ["train.max_steps=8"]))
    return per_step(run_dir)


def assert_same_trajectory(resumed: dict[int, dict], reference: dict[int, dict]) -> None:
    assert sorted(resumed) == sorted(reference) == list(range(1, 9))
    for step in reference:
        assert resumed[step]["loss"] == reference[step]["loss"], step  # bit for bit
        assert resumed[step]["grad_norm"] == reference[step]["grad_norm"], step


def test_kill_minus_nine_mid_run_then_resume_is_exact(
    tmp_path: Path, synthetic_shards: Path, reference
) -> None:
    run_dir = tmp_path / "run"
    args = ["train.max_steps=8", "train.checkpoint.every_steps=2"]
    process = launch(run_dir, synthetic_shards, "full_pretrain", args)
    deadline = time.monotonic() + deadline_s(300)
    while len(per_step(run_dir)) < 3:
        assert process.poll() is None and time.monotonic() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    os.kill(
        rank_pids(process, run_dir)[-1], signal.SIGKILL
    )  # one rank dies mid-run; the launcher kills the rest
    finish(process, expect_ok=False)
    assert process.returncode != 0
    killed_at = max(per_step(run_dir))
    assert killed_at < 8
    output = finish(launch(run_dir, synthetic_shards, "full_pretrain", args))
    assert "resumed from" in output
    assert_same_trajectory(per_step(run_dir), reference)


def test_crash_while_writing_a_checkpoint_resumes_from_the_previous_one(
    tmp_path: Path, synthetic_shards: Path, reference
) -> None:
    run_dir = tmp_path / "run"
    args = ["train.max_steps=8", "train.checkpoint.every_steps=2"]
    crashed = launch(
        run_dir, synthetic_shards, "full_pretrain", args, env={"QVLTRAIN_TEST_CRASH_BEFORE_COMMIT": "4:1"}
    )
    finish(crashed, expect_ok=False)
    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / "step_000004").exists() and not (checkpoints / "step_000004" / "COMMITTED").exists()
    assert os.path.realpath(checkpoints / "latest").endswith("step_000002")
    output = finish(launch(run_dir, synthetic_shards, "full_pretrain", args))
    assert f"resumed from {checkpoints / 'step_000002'}" in output
    assert_same_trajectory(per_step(run_dir), reference)


def test_nonfinite_loss_on_one_rank_is_skipped_on_all(tmp_path: Path, synthetic_shards: Path) -> None:
    run_dir = tmp_path / "run"
    finish(
        launch(
            run_dir,
            synthetic_shards,
            "full_pretrain",
            ["train.max_steps=4"],
            env={"QVLTRAIN_TEST_NONFINITE_AT": "2,1"},
            entry=FAULTY_ENTRY,
        )
    )
    records = per_step(run_dir)
    assert [records[s]["skipped_nonfinite"] for s in (1, 2, 3, 4)] == [0, 1, 0, 0]
    assert all(records[s]["loss"] == records[s]["loss"] for s in (1, 3, 4))  # finite again after the skip
    process = launch(
        tmp_path / "budget",
        synthetic_shards,
        "full_pretrain",
        ["train.max_steps=4", "train.max_nonfinite_steps=0"],
        env={"QVLTRAIN_TEST_NONFINITE_AT": "2,0"},
        entry=FAULTY_ENTRY,
    )
    output = finish(process, expect_ok=False)
    assert process.returncode != 0 and "non-finite loss or gradient norm" in output


def consolidated(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    from qvltrain.train.export import load_consolidated_model

    return load_consolidated_model(str(run_dir / "checkpoints" / f"step_{step:06d}")).state_dict()


@pytest.mark.parametrize(
    "stage,frozen_prefix", [("vit_pretrain", "model.language_model."), ("instruct", "model.visual.blocks.")]
)
def test_frozen_weights_stay_bit_identical(
    stage: str, frozen_prefix: str, tmp_path: Path, synthetic_shards: Path
) -> None:
    run_dir = tmp_path / "run"
    finish(
        launch(
            run_dir,
            synthetic_shards,
            stage,
            ["train.max_steps=3", "train.checkpoint.every_steps=1", "train.checkpoint.keep_last=0"],
        )
    )
    first, last = consolidated(run_dir, 1), consolidated(run_dir, 3)
    frozen = [name for name in first if name.startswith(frozen_prefix)]
    trained = [name for name in first if name.startswith("model.visual.merger.")]
    assert frozen and trained
    assert all(torch.equal(first[name], last[name]) for name in frozen)
    assert any(not torch.equal(first[name], last[name]) for name in trained)


def export_run(run_dir: Path, export_dir: Path) -> None:
    """launch/export_hf.py RUN OUT, as a user runs it."""
    result = subprocess.run(
        [sys.executable, "launch/export_hf.py", str(run_dir), str(export_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def exported_validation_loss(
    model, export_dir: Path, data_overrides: list[str], batches_per_rank: int
) -> float:
    """The validation loss of a 2-rank engine, recomputed from its export: the same packs each rank
    validated (`batches_per_rank` each), through our training forward of the exported model."""
    from qvltrain.config import to_typed
    from qvltrain.data.loader import TrainBatches
    from qvltrain.model.qwen2_vl.train_module import Qwen2VLTrainModule
    from qvltrain.text.tokenizer import load_tokenizer
    from tests.test_config import compose_config

    config = to_typed(compose_config(["+stage=full_pretrain", *data_overrides]))
    module = Qwen2VLTrainModule(model)
    tokenizer = load_tokenizer(str(export_dir))
    loss_sum = tokens = 0.0
    with torch.no_grad():
        for rank in (0, 1):
            batches = TrainBatches(config.data, "plain", tokenizer, rank, 2, datasets=config.data.validation)
            for _ in range(batches_per_rank):
                batch_sum, batch_tokens, _ = module(next(batches))
                loss_sum, tokens = loss_sum + float(batch_sum), tokens + float(batch_tokens)
    return loss_sum / tokens


def test_export_loads_in_transformers_and_matches_the_engine(tmp_path: Path, synthetic_shards: Path) -> None:
    from transformers import Qwen2VLForConditionalGeneration

    run_dir, export_dir = tmp_path / "run", tmp_path / "export"
    overrides = [
        f"data.train.0.shards={synthetic_shards / 'train'}",
        f"data.validation.0.shards={synthetic_shards / 'validation'}",
    ]
    finish(
        launch(
            run_dir,
            synthetic_shards,
            "full_pretrain",
            ["train.max_steps=3", "train.validation.num_batches=2"],
        )
    )
    engine_val_loss = per_step(run_dir)[3]["val_loss"]
    export_run(run_dir, export_dir)
    # The rule the positions were trained with travels in the export (model.position_rule, default paper).
    assert json.loads((export_dir / "config.json").read_text())["qvltrain_position_rule"] == "paper"

    model = Qwen2VLForConditionalGeneration.from_pretrained(export_dir, local_files_only=True).eval()
    # the engine validated 2 micro-batches on each of its 2 ranks
    val_loss = exported_validation_loss(model, export_dir, overrides, batches_per_rank=2)
    assert val_loss == pytest.approx(engine_val_loss, rel=1e-5, abs=1e-6)

    from qvltrain.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(export_dir))

    prompt = tokenizer("a red", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > prompt["input_ids"].shape[1]
