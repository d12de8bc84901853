"""The training benchmark runs end to end in a tiny configuration and reports both variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.bench.train import main


@pytest.mark.slow  # ~15 s: two processes, each importing DeepSpeed and building a ZeRO-3 engine
def test_tiny_training_benchmark_reports_both_variants(tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    tiny = "--flavor tiny --seq-len 1024 --num-tokens 2048 --rounds 1 --repeats 1 --warmup-steps 0"
    main([*tiny.split(), "--out", str(out)])
    report = json.loads(out.read_text())
    variants = report["variants"]
    assert set(variants) == {"baseline", "packed"}
    # Same work in both: the same samples and real tokens, the same model FLOPs.
    assert variants["baseline"]["real_tokens"] == variants["packed"]["real_tokens"] > 0
    assert variants["baseline"]["model_flops"] == variants["packed"]["model_flops"] > 0
    assert variants["packed"]["num_micro_batches"] == variants["packed"]["num_steps"] == 2
    for result in variants.values():
        assert result["tokens_per_s"] > 0 and result["peak_memory_gb"] > 0
        assert sum(result["profile"]["phases"].values()) > 0
    # No warm-up: the first step of both is the same loss of the same freshly initialised model.
    assert abs(variants["baseline"]["losses"][0] - variants["packed"]["losses"][0]) < 1e-4
