"""The loader benchmark runs end to end on a few samples and compares like with like."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import deadline_s


def test_small_loader_benchmark_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "loader.json"
    # A subprocess: the benchmark pins itself to one core, which must not leak into pytest.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "apps.bench.loader",
            "--samples",
            "40",
            "--rounds",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=deadline_s(300),
        cwd=Path(__file__).resolve().parents[2],
    )
    report = json.loads(out.read_text())
    one = report["ours_1_worker"]
    assert "keys" not in one  # the delivered keys feed the floor; they are not part of the report
    assert one["samples_per_s"] > 0 and 0.5 < one["packing_efficiency"] <= 1.0
    assert report["ratio_1_worker_to_floor"] == one["samples_per_s"] / report["floor_samples_per_s"]
    assert report["ours_2_workers"]["samples_per_s"] > 0 and report["floor_of_2_workers_samples_per_s"] > 0
