"""Shared fixtures: real shards written by the repo's own recipe, once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Tests never reach a hub or a W&B server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> Path:
    """data/synthetic-like folder with train/ (4 shards) and validation/ (2 shards)."""
    from data_recipes.synthetic_shapes import main

    out = tmp_path_factory.mktemp("synthetic")
    main(["--out", str(out), "--train", "96", "--validation", "32", "--samples-per-shard", "16"])
    return out
