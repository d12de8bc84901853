"""Qwen2.5-VL end to end: a real 2-rank DeepSpeed ZeRO-3 run of the tiny flavor (launch/train.py,
model=qwen2_5_vl_tiny) exports a folder that loads as transformers' `Qwen2_5_VLForConditionalGeneration`,
whose validation loss through our packed forward equals the engine's (our packed forward equals
transformers' own forward sample by sample: test_packed.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.train.test_resume_export import export_run, finish, launch, per_step

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]


def test_export_loads_as_qwen2_5_vl_and_its_loss_equals_ours(tmp_path: Path, synthetic_shards: Path) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    from qvltrain.config import to_typed
    from qvltrain.data.loader import TrainBatches
    from qvltrain.model.family import family_of_hf_config
    from qvltrain.text.tokenizer import load_tokenizer
    from tests.test_config import compose_config

    run_dir, export_dir = tmp_path / "run", tmp_path / "export"
    extra = ["model=qwen2_5_vl_tiny", "train.max_steps=3", "train.validation.num_batches=2"]
    finish(launch(run_dir, synthetic_shards, "full_pretrain", extra))
    engine_val_loss = per_step(run_dir)[3]["val_loss"]
    export_run(run_dir, export_dir)
    exported = json.loads((export_dir / "config.json").read_text())
    assert exported["model_type"] == "qwen2_5_vl" and exported["qvltrain_position_rule"] == "paper"
    assert exported["vision_config"]["fullatt_block_indexes"] == [1]

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(export_dir, local_files_only=True).eval()
    family = family_of_hf_config(model.config)
    assert family.name == "qwen2_5_vl"
    config = to_typed(
        compose_config(
            [
                "+stage=full_pretrain",
                "model=qwen2_5_vl_tiny",
                f"data.train.0.shards={synthetic_shards / 'train'}",
                f"data.validation.0.shards={synthetic_shards / 'validation'}",
            ]
        )
    )
    module = family.train_module(model, config.model, frozen_vision_tower=False)
    tokenizer = load_tokenizer(str(export_dir))
    options = family.render_options(model.config, family.trained_position_rule(model.config))
    loss_sum = tokens = 0.0
    with torch.no_grad():
        for rank in (0, 1):  # the engine validated 2 micro-batches on each of its 2 ranks
            batches = TrainBatches(
                config.data,
                "plain",
                tokenizer,
                rank,
                2,
                datasets=config.data.validation,
                render_options=options,
            )
            for _ in range(2):
                batch_sum, batch_tokens, _ = module(next(batches))
                loss_sum, tokens = loss_sum + float(batch_sum), tokens + float(batch_tokens)
    assert loss_sum / tokens == pytest.approx(engine_val_loss, rel=1e-5, abs=1e-6)
