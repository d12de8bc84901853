"""Invariant 3 for Qwen2.5-VL under real 2-process DeepSpeed ZeRO-3: a rank with text-only packs beside
a rank with video packs (window-attention tower, absolute-time positions) never hangs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, deadline_s
from tests.data.mixed_shards import write_mixed_shards

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]


def test_text_only_rank_and_video_rank_do_not_hang(tmp_path: Path) -> None:
    write_mixed_shards(tmp_path / "text", 12, 12, kinds=("text",), prefix="text")
    write_mixed_shards(tmp_path / "video", 12, 12, kinds=("video", "frames"), prefix="video")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.model.qwen2_5_vl.zero3_run", str(tmp_path)],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=deadline_s(300))[0])  # ~28 s idle, 84 s at load 12
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        pytest.fail("a rank hung: ZeRO-3 parameter gathers went out of step")
    for rank, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, output[-3000:]
        assert f"rank {rank} ({('text', 'video')[rank]}) done" in output
