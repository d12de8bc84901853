"""The vision benchmark runs end to end (tiny sizes) and writes its JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import deadline_s


def test_quick_benchmark_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "vision.json"
    # A subprocess: the benchmark pins itself to one core, which must not leak into pytest.
    subprocess.run(
        [sys.executable, "-m", "apps.bench.vision", "--quick", "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=deadline_s(120),
        cwd=Path(__file__).resolve().parents[2],
    )
    report = json.loads(out.read_text())
    assert report["images"][0]["size"] == "64x48"
    assert set(report["images"][0]["images_per_s"]) == {"a", "b", "b_prime", "c"}
    assert report["video"]["frames_per_s"]["ours"] > 0
