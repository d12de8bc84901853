"""Real runs: the DeepSpeed launcher, two CPU ranks, ZeRO-3, real shards, W&B offline."""

from __future__ import annotations

import glob
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qvltrain.train.distributed import SHM_PREFIX, free_port
from tests.conftest import REPO_ROOT, deadline_s

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]


def run_training(
    command: list[str], run_dir: Path, shards: Path, extra: list[str]
) -> subprocess.CompletedProcess:
    overrides = [
        f"train.run_dir={run_dir}",
        f"data.train.0.shards={shards / 'train'}",
        f"data.validation.0.shards={shards / 'validation'}",
        *extra,
    ]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "WANDB_MODE": "offline",
    }
    result = subprocess.run(
        [*command, *overrides],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=deadline_s(600),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_mixture_logged(metrics: list[dict]) -> None:
    """The realised mixture: each dataset's share of the samples trained on, over all ranks."""
    for record in metrics:
        shares = {name: share for name, share in record.items() if name.startswith("mixture/")}
        assert shares and abs(sum(shares.values()) - 1.0) < 1e-9, record


@pytest.mark.parametrize("stage", ["vit_pretrain", "full_pretrain", "instruct"])
def test_two_rank_zero3_run_of_each_stage(stage: str, tmp_path: Path, synthetic_shards: Path) -> None:
    run_dir = tmp_path / "run"
    port = free_port()
    launcher = [str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", "2", "--master_port", str(port)]
    result = run_training(
        [*launcher, "launch/train.py", f"+stage={stage}"],
        run_dir,
        synthetic_shards,
        ["train.max_steps=3", "data.micro_batch_size=2", "logger=wandb"],
    )
    metrics = read_metrics(run_dir)
    assert [record["step"] for record in metrics] == [1, 2, 3]
    assert all(math.isfinite(record["loss"]) and math.isfinite(record["grad_norm"]) for record in metrics)
    assert all(record["tokens_per_s"] > 0 for record in metrics)
    # CPU ranks: the share of each step spent waiting at collectives, and the ranks' work balance.
    assert all(
        0 <= record["rank_wait_share"] < 1 and 0 < record["rank_work_balance"] <= 1 for record in metrics
    )
    assert_mixture_logged(metrics)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["stage"]["name"] == stage and saved["train"]["run_dir"] == str(run_dir)
    assert list((run_dir / "wandb").glob("offline-run-*")), "no offline W&B run"
    assert f"run directory: {run_dir}" in result.stdout
    # Both ranks wrote into the one run directory: nothing else appeared beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # Nor in /dev/shm (RAM): DeepSpeed's CPU allreduce files of this run were unlinked by the ranks.
    assert not glob.glob(f"/dev/shm/{SHM_PREFIX}_*_{port}_*"), "shared-memory allreduce files left behind"


def test_single_process_run_with_launcher_argument(tmp_path: Path, synthetic_shards: Path) -> None:
    """`python launch/train.py` works without the launcher, and tolerates the launcher's --local_rank."""
    run_dir = tmp_path / "run"
    run_training(
        [sys.executable, "launch/train.py", "--local_rank=0", "+stage=vit_pretrain"],
        run_dir,
        synthetic_shards,
        ["train.max_steps=2", "logger=none"],
    )
    assert len(read_metrics(run_dir)) == 2
    assert_mixture_logged(read_metrics(run_dir))
    assert not (run_dir / "wandb").exists()


def test_missing_stage_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "launch/train.py", "logger=none"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=deadline_s(120),
    )
    assert result.returncode != 0
    assert "vit_pretrain, full_pretrain, instruct" in result.stderr
