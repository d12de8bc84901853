"""Kept so older imports keep working: the data path is qvltrain.data.loader (packed batches)."""

from qvltrain.data.loader import TrainBatches, build_train_batches

__all__ = ["TrainBatches", "build_train_batches"]
