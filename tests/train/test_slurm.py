"""launch/slurm/train.sbatch on a real (one-node, localhost) SLURM cluster: 2 tasks = 2 CPU ranks."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, deadline_s, read_jsonl
from tests.train.slurm_cluster import LocalSlurm, ensure_slurm_installed

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = ensure_slurm_installed()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except (RuntimeError, OSError) as error:
        cluster.stop()
        pytest.skip(f"could not start a local SLURM cluster: {error}")
    yield cluster
    cluster.stop()


def sbatch(slurm: LocalSlurm, tmp_path: Path, shards: Path, overrides: list[str]) -> str:
    run_dir = tmp_path / "run"
    result = slurm.run(
        [
            "sbatch",
            "--parsable",
            "--ntasks=2",
            "--ntasks-per-node=2",
            f"--output={tmp_path}/job.out",
            "launch/slurm/train.sbatch",
            "+stage=vit_pretrain",
            f"train.run_dir={run_dir}",
            "logger=none",
            f"data.train.0.shards={shards / 'train'}",
            f"data.validation.0.shards={shards / 'validation'}",
            "data.micro_batch_size=2",
            *overrides,
        ],
        cwd=REPO_ROOT,
        env={"QVL_PYTHON": sys.executable, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        timeout=deadline_s(60),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def wait_for(predicate, timeout: float, what: str, context=None) -> None:
    """Poll `predicate` until it holds; on timeout, fail with `context()` (the job's state and log)."""
    deadline = time.monotonic() + deadline_s(timeout)
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    details = f"\n{context()}" if context is not None else ""
    raise AssertionError(
        f"timed out after {deadline_s(timeout):.0f} s waiting for {what} (on a loaded machine raise "
        f"QVLTRAIN_TEST_TIME_SCALE){details}"
    )


def job_state(slurm: LocalSlurm, job_id: str) -> str:
    return slurm.run(["scontrol", "show", "job", job_id], timeout=deadline_s(30)).stdout


def job_ended(state: str) -> bool:
    ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")
    return any(f"JobState={name}" in state for name in ended)


def metrics(run_dir: Path) -> dict[int, dict]:
    return {record["step"]: record for record in read_jsonl(run_dir / "metrics.jsonl")}


def job_log(tmp_path: Path) -> str:
    """The job's output so far ("" before SLURM created the file)."""
    path = tmp_path / "job.out"
    return path.read_text() if path.exists() else ""


def job_report(slurm: LocalSlurm, job_id: str, tmp_path: Path):
    """What a failed wait shows: the job's SLURM state and the tail of its output."""
    return lambda: f"{job_state(slurm, job_id)}\n--- job output (tail) ---\n{job_log(tmp_path)[-4000:]}"


def test_two_task_job_trains(slurm: LocalSlurm, tmp_path: Path, synthetic_shards: Path) -> None:
    job_id = sbatch(slurm, tmp_path, synthetic_shards, ["train.max_steps=3"])
    wait_for(lambda: job_ended(job_state(slurm, job_id)), 300, "job end", job_report(slurm, job_id, tmp_path))
    log = (tmp_path / "job.out").read_text()
    assert "JobState=COMPLETED" in job_state(slurm, job_id), log[-3000:]
    assert "2 ranks" in log
    assert sorted(metrics(tmp_path / "run")) == [1, 2, 3]


def test_signal_checkpoints_requeues_and_resumes(
    slurm: LocalSlurm, tmp_path: Path, synthetic_shards: Path
) -> None:
    run_dir = tmp_path / "run"
    job_id = sbatch(slurm, tmp_path, synthetic_shards, ["train.max_steps=400"])
    report = job_report(slurm, job_id, tmp_path)
    wait_for(lambda: len(metrics(run_dir)) >= 3, 300, "the first steps", report)
    assert slurm.run(["scancel", "--signal=USR1", job_id], timeout=deadline_s(30)).returncode == 0
    wait_for(lambda: "requeueing" in job_log(tmp_path), 120, "the checkpoint on signal", report)
    # SLURM starts the requeued job once the old credential expired (cred_expire, 10 s in this cluster).
    wait_for(lambda: "resumed from" in job_log(tmp_path), 300, "the requeued job to resume", report)
    log = (tmp_path / "job.out").read_text()
    assert "checkpoint saved on signal: requeueing" in log
    assert slurm.run(["scancel", job_id], timeout=deadline_s(30)).returncode == 0
