"""Shard files: deterministic writing by the recipe, shard-list expansion."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from qvltrain.data.shards import expand_shards


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_recipe_is_deterministic(synthetic_shards: Path, tmp_path: Path) -> None:
    from data_recipes.synthetic_shapes import main

    main(["--out", str(tmp_path), "--train", "96", "--validation", "32", "--samples-per-shard", "16"])
    assert digest(tmp_path / "train") == digest(synthetic_shards / "train")
    assert len(expand_shards(str(tmp_path / "train"))) == 6


def test_expand_shards_forms(synthetic_shards: Path) -> None:
    folder = synthetic_shards / "train"
    by_folder = expand_shards(str(folder))
    assert expand_shards(str(folder / "train-{000000..000005}.tar")) == by_folder
    assert expand_shards(str(folder / "*.tar")) == by_folder
    assert expand_shards(f"{folder}/train-000000.tar::{folder}/train-000001.tar") == by_folder[:2]
    with pytest.raises(ValueError, match="missing"):
        expand_shards(str(folder / "train-{000000..000099}.tar"))
