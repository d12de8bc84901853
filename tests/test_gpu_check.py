"""launch/gpu_check.sh --dry-run runs every step of the GPU check on the CPU; the wheel folder check."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, deadline_s

sys.path.insert(0, str(REPO_ROOT / "launch"))
import gpu_wheels  # noqa: E402


@pytest.mark.slow
def test_dry_run_exercises_every_step(tmp_path: Path) -> None:
    out = tmp_path / "check"
    env = {**os.environ, "QVL_PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", "launch/gpu_check.sh", "--dry-run", "--out", str(out), "--wheels", str(tmp_path / "none")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=deadline_s(600),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for step in ("1/4 packages", "2/4 GPU tests", "3/4 training-step benchmark", "4/4 report"):
        assert f"== {step} ==" in result.stdout
    report = json.loads((out / "gpu_check.json").read_text())
    names = {case["name"].split("::")[-1].split("[")[0] for case in report["tests"]}
    assert {"test_bf16_packed_logits_equal_transformers_unpacked", "test_chunked_loss_equals_plain_on_the_device",
            "test_cuda_varlen_matches_per_segment", "test_cuda_equals_cpu"} <= names  # fmt: skip
    assert report["tests_failed"] == 0 and report["tests_passed"] >= 6
    assert report["dry_run"] and set(report["bench"]["summary"]) == {"baseline", "packed"}
    assert all(check["met"] is None for check in report["targets"].values())  # a CPU run judges nothing
    table = (out / "gpu_check.md").read_text()
    assert "| packed |" in table and "| baseline |" in table and "packed_vs_padded" in table


def fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> None:
    metadata = "".join(f"Requires-Dist: {line}\n" for line in requires)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            f"{name}-{version}.dist-info/METADATA", f"Name: {name}\nVersion: {version}\n{metadata}"
        )
    (folder / f"{name}-{version}-py3-none-any.whl").write_bytes(buffer.getvalue())


def test_wheel_folder_check_finds_missing_duplicated_and_unmet(tmp_path: Path) -> None:
    for name in gpu_wheels.NEEDED:
        fake_wheel(tmp_path, name.replace("-", "_"), "1.0", ["torch>=2", 'pytest; extra == "dev"'])
    assert gpu_wheels.check(tmp_path, "3.12") == []
    fake_wheel(tmp_path, "webdataset", "2.0", ["braceexpand", 'tomli; python_version < "3.11"'])
    (tmp_path / "decord-1.0-py3-none-any.whl").unlink()
    problems = gpu_wheels.check(tmp_path, "3.12")
    assert "two wheels of webdataset" in problems and "no wheel of decord" in problems
    assert any("needs braceexpand" in problem for problem in problems)
    assert not any("tomli" in problem for problem in problems)  # its marker is false on Python 3.12
