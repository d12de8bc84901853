"""The other shipped DeepSpeed groups on real 2-rank CPU runs: ZeRO-2 (whose checkpoints hold full
weights once plus each rank's optimizer partition, unlike ZeRO-3's per-rank weight partitions) and
ZeRO-3 with the optimizer and parameters offloaded to CPU (stepped by DeepSpeed's CPU Adam, built by
DeepSpeed on first use). For each: resume from a checkpoint is exact, frozen weights stay
bit-identical, and the HF export loads in transformers with the engine's validation loss. ZeRO-2's
resume runs from a user's DeepSpeed JSON (deepspeed.config_file) equivalent to the group."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from qvltrain.train.export import load_consolidated_model
from tests.train.test_resume_export import export_run, exported_validation_loss, finish, launch, per_step

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]


def resumed_copy(run_dir: Path, copy_dir: Path, from_step: int) -> None:
    """`run_dir` as it was right after the checkpoint of `from_step` committed: later checkpoints and
    metrics removed, so a relaunch must resume from that checkpoint."""
    shutil.copytree(run_dir, copy_dir, symlinks=True)
    checkpoints = copy_dir / "checkpoints"
    (checkpoints / "latest").unlink()
    for step_dir in checkpoints.glob("step_*"):
        if int(step_dir.name.removeprefix("step_")) > from_step:
            shutil.rmtree(step_dir)
    lines = [
        line for line in (copy_dir / "metrics.jsonl").read_text().splitlines(keepends=True) if line.strip()
    ]
    kept = [line for line in lines if json.loads(line)["step"] <= from_step]
    (copy_dir / "metrics.jsonl").write_text("".join(kept))


# A user's own DeepSpeed JSON in the HF Trainer's style, saying what conf/deepspeed/zero2.yaml says.
ZERO2_JSON = {
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "train_batch_size": "auto",
    "gradient_clipping": "auto",
    "bf16": {"enabled": "auto"},
    "fp16": {"enabled": "auto"},
    "optimizer": {
        "type": "AdamW",
        "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
    },
    "zero_optimization": {
        "stage": 2,
        "overlap_comm": False,
        "contiguous_gradients": True,
        "reduce_scatter": True,
        "reduce_bucket_size": "auto",
        "allgather_bucket_size": 50000000,
    },
}


@pytest.mark.parametrize("group", ["zero2", "zero3_offload"])
def test_group_resumes_exactly_and_exports(group: str, tmp_path: Path, synthetic_shards: Path) -> None:
    """ZeRO-2's resume continues under the same settings given as a user's JSON (deepspeed.config_file):
    the run goes on bit for bit, so the JSON path builds the same engine as the group."""
    from transformers import Qwen2VLForConditionalGeneration

    stage, frozen_prefix = "vit_pretrain", "model.language_model."  # the LLM is frozen in this stage
    common = [
        "train.max_steps=4",
        "train.checkpoint.every_steps=2",
        "train.checkpoint.keep_last=0",
        "train.validation.num_batches=2",
    ]
    args = [f"deepspeed={group}", *common]
    resume_args = args
    if group == "zero2":
        user_json = tmp_path / "ds_zero2.json"
        user_json.write_text(json.dumps(ZERO2_JSON))
        resume_args = [f"deepspeed.config_file={user_json}", *common]
    run_dir = tmp_path / "run"
    finish(launch(run_dir, synthetic_shards, stage, args))
    reference = per_step(run_dir)
    assert sorted(reference) == [1, 2, 3, 4]

    # Resume from step 2: steps 3 and 4 again, bit for bit.
    resumed_dir = tmp_path / "resumed"
    resumed_copy(run_dir, resumed_dir, from_step=2)
    output = finish(launch(resumed_dir, synthetic_shards, stage, resume_args))
    assert f"resumed from {resumed_dir / 'checkpoints' / 'step_000002'}" in output
    resumed = per_step(resumed_dir)
    for step in (3, 4):
        assert resumed[step]["loss"] == reference[step]["loss"], step
        assert resumed[step]["grad_norm"] == reference[step]["grad_norm"], step

    # The checkpoints hold the frozen weights unchanged and the trained ones changed.
    first = load_consolidated_model(str(run_dir / "checkpoints" / "step_000002")).state_dict()
    last = load_consolidated_model(str(run_dir / "checkpoints" / "step_000004")).state_dict()
    frozen = [name for name in first if name.startswith(frozen_prefix)]
    assert frozen and all(torch.equal(first[name], last[name]) for name in frozen)
    assert any(
        not torch.equal(first[name], last[name]) for name in first if name.startswith("model.visual.merger.")
    )

    # The export of the last checkpoint is the engine: same validation loss on the same packs.
    export_dir = tmp_path / "export"
    export_run(run_dir, export_dir)
    model = Qwen2VLForConditionalGeneration.from_pretrained(export_dir, local_files_only=True).eval()
    overrides = [
        f"data.train.0.shards={synthetic_shards / 'train'}",
        f"data.validation.0.shards={synthetic_shards / 'validation'}",
    ]
    val_loss = exported_validation_loss(model, export_dir, overrides, batches_per_rank=2)
    assert val_loss == pytest.approx(reference[4]["val_loss"], rel=1e-5, abs=1e-6)
