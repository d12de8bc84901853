"""The handwritten digits shipped in data_recipes/assets/digits (scikit-learn's copy of UCI optdigits).

1797 bitmaps of 8x8 grey levels 0..16 with labels 0..9; see the asset's README for origin and
license. numpy and gzip only: scikit-learn is not a dependency.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

DIGITS_FILE = Path(__file__).resolve().parent / "assets" / "digits" / "digits.csv.gz"
NUM_DIGIT_IMAGES = 1797
MAX_GREY_LEVEL = 16


@dataclass(frozen=True)
class Digits:
    """The whole dataset, read-only."""

    bitmaps: np.ndarray  # [1797, 8, 8] uint8, 0..16 (ink is high)
    labels: np.ndarray  # [1797] int64, 0..9


@lru_cache(maxsize=1)
def load_digits() -> Digits:
    with gzip.open(DIGITS_FILE, "rt", newline="") as source:
        rows = np.array([[int(value) for value in row] for row in csv.reader(source)], dtype=np.int64)
    if rows.shape != (NUM_DIGIT_IMAGES, 65):
        raise ValueError(f"{DIGITS_FILE}: expected {NUM_DIGIT_IMAGES} rows of 65 values, got {rows.shape}")
    bitmaps = rows[:, :64].reshape(-1, 8, 8).astype(np.uint8)
    bitmaps.setflags(write=False)
    labels = rows[:, 64]
    labels.setflags(write=False)
    return Digits(bitmaps=bitmaps, labels=labels)


def split_indices(validation_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Source images per split, disjoint: every sample of a split is drawn from its own images only.

    Stratified by label, so each split holds every digit in about the same proportion.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction={validation_fraction}: must be in (0, 1)")
    labels = load_digits().labels
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(labels == label))
        num_validation = max(1, round(len(members) * validation_fraction))
        validation.append(members[:num_validation])
        train.append(members[num_validation:])
    return {"train": np.sort(np.concatenate(train)), "validation": np.sort(np.concatenate(validation))}


def digit_image(index: int, side: int) -> Image.Image:
    """Digit `index` as dark ink on white paper, `side` x `side` pixels (greyscale 'L')."""
    bitmap = load_digits().bitmaps[index].astype(np.float32)
    paper = (255 - bitmap * (255 / MAX_GREY_LEVEL)).round().astype(np.uint8)
    return Image.fromarray(paper, mode="L").resize((side, side), resample=Image.Resampling.BILINEAR)


def paste_digits(canvas_size: tuple[int, int], placements: list[tuple[int, int, int, int]]) -> Image.Image:
    """A white RGB canvas (width, height) with digits pasted as (index, x, y, side); darker ink wins."""
    canvas = np.full((canvas_size[1], canvas_size[0]), 255, dtype=np.uint8)
    for index, x, y, side in placements:
        glyph = np.asarray(digit_image(index, side))
        region = canvas[y : y + side, x : x + side]
        np.minimum(region, glyph, out=region)
    return Image.fromarray(canvas, mode="L").convert("RGB")
