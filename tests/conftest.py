"""Shared fixtures: real shards written by the repo's own recipe, once per test session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Tests never reach a hub or a W&B server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# The one knob for every deadline in the tests (subprocess timeouts, waits for a run to reach a
# step): a loaded or slow machine sets QVLTRAIN_TEST_TIME_SCALE=3 and every deadline triples. No
# test asserts that something is fast; deadlines only turn a hang into a failure with a message.
TIME_SCALE = float(os.environ.get("QVLTRAIN_TEST_TIME_SCALE", "1"))
if not TIME_SCALE > 0:
    raise ValueError(f"QVLTRAIN_TEST_TIME_SCALE must be a positive number, got {TIME_SCALE!r}")


def pytest_sessionstart(session) -> None:
    """DeepSpeed's CPU ops are compiled once here, with no deadline running: a multi-process test
    killed at its deadline mid-build would leave the build lock behind and hang every later one."""
    from qvltrain.train.distributed import build_cpu_ops

    build_cpu_ops()


def deadline_s(seconds: float) -> float:
    """A deadline of `seconds` on this project's 2-core machine, scaled by QVLTRAIN_TEST_TIME_SCALE."""
    return seconds * TIME_SCALE


def read_jsonl(path: Path) -> list[dict]:
    """The complete records of a JSON-lines file another process may be appending to right now
    (a last line without its newline is still being written: left for the next read)."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")[:-1]  # the part after the last newline is incomplete (or empty)
    return [json.loads(line) for line in lines if line]


@pytest.fixture(scope="session")
def gpu_device():
    """The device of the `@pytest.mark.gpu` tests: CUDA; the CPU when QVLTRAIN_GPU_TESTS_ON_CPU=1.

    `launch/gpu_check.sh --dry-run` sets the variable so CI runs every GPU test's code on the CPU
    (with the exact per-segment attention instead of the CUDA varlen kernels); elsewhere a machine
    without CUDA skips them.
    """
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get("QVLTRAIN_GPU_TESTS_ON_CPU") == "1":
        return torch.device("cpu")
    pytest.skip("needs a CUDA device (QVLTRAIN_GPU_TESTS_ON_CPU=1 runs it on the CPU)")


@pytest.fixture(scope="session")
def qwen2_vl_tokenizer_dir(tmp_path_factory) -> str:
    """A tokenizer with the Qwen2-VL release's full vocabulary: a local release when one is given
    (QVLTRAIN_QWEN2VL_TOKENIZER or the HF cache), else one built from the public Qwen BPE ranks."""
    from tests.text.oracle import release_tokenizer_dir
    from tests.text.qwen_vocab import build_qwen2_vl_tokenizer

    release = release_tokenizer_dir()
    return release or str(build_qwen2_vl_tokenizer(tmp_path_factory.mktemp("qwen2_vl_tokenizer")))


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> Path:
    """data/synthetic-like folder with train/ (4 shards) and validation/ (2 shards)."""
    from data_recipes.synthetic_shapes import main

    out = tmp_path_factory.mktemp("synthetic")
    main(["--out", str(out), "--train", "96", "--validation", "32", "--samples-per-shard", "16"])
    return out
