"""Where DeepSpeed's compiled ops go (per Python environment) and the shared-memory file names."""

from __future__ import annotations

import os
import sys
import time

import pytest

from qvltrain.train import distributed


def test_compiled_ops_live_in_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert distributed.compiled_ops_in_environment() == str(tmp_path / "torch_extensions")
    assert os.environ["TORCH_EXTENSIONS_DIR"] == str(tmp_path / "torch_extensions")


def test_a_users_extension_folder_wins(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "/somewhere/else")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert distributed.compiled_ops_in_environment() is None
    assert os.environ["TORCH_EXTENSIONS_DIR"] == "/somewhere/else"


def test_a_read_only_environment_keeps_torchs_default(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert distributed.compiled_ops_in_environment() is None
    assert "TORCH_EXTENSIONS_DIR" not in os.environ


def test_the_environments_ninja_comes_first(tmp_path, monkeypatch) -> None:
    # Two ninja versions (system 1.11, pip 1.13) hash build commands differently: each rebuilt the
    # other's ops. The environment's own must win in every process, however it was started.
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "ninja").write_text("#!/bin/sh\n")
    (bin_dir / "ninja").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", os.pathsep.join(["/usr/bin", str(bin_dir), "/bin"]))
    assert distributed.environment_build_tools_first() == str(bin_dir)
    assert os.environ["PATH"].split(os.pathsep) == [str(bin_dir), "/usr/bin", "/bin"]
    assert distributed.environment_build_tools_first() is None  # already first: unchanged


def test_an_environment_without_ninja_leaves_path_alone(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert distributed.environment_build_tools_first() is None
    assert os.environ["PATH"] == "/usr/bin:/bin"


def test_a_killed_builds_lock_is_removed_a_running_ones_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    for name in ("deepspeed_shm_comm", "cpu_adam", "no_lock"):
        (tmp_path / name).mkdir()
    stale, fresh = tmp_path / "deepspeed_shm_comm" / "lock", tmp_path / "cpu_adam" / "lock"
    stale.touch()
    fresh.touch()
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    with pytest.warns(UserWarning, match="left by a killed build"):
        assert distributed.remove_stale_build_locks() == [str(stale)]
    assert not stale.exists() and fresh.exists()
    assert distributed.remove_stale_build_locks() == []


def test_shm_buffer_name_is_deepspeeds(monkeypatch) -> None:
    # deepspeed/ops/csrc/cpu/comm/shm.cpp: "%s_%d_%s_%s" (prefix, uid, MASTER_ADDR, MASTER_PORT), then "_%d" rank.
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    expected = f"/dev/shm/deepspeed_allreduce_buffer_{os.getuid()}_127.0.0.1_29500_1"
    assert distributed.shm_buffer_path(1) == expected
