"""Checkpoints in the design's layout, written so a crash at any moment leaves a usable one.

RUN/checkpoints/step_000123/
  deepspeed/...      engine.save_checkpoint (every rank writes its partitions)
  rank_00000.pt      per rank: RNG states, data pipeline state, trainer counters
  meta.json          resolved config, versions, world size, step, tokens seen
  COMMITTED          written by rank 0 after a barrier: only now is the checkpoint usable
  universal/...      made on the first resume by another number of ranks (DeepSpeed's universal
                     checkpoint: every parameter's fp32 weight and Adam moments, whole)
RUN/checkpoints/latest -> step_000123   moved (atomically) only after COMMITTED

Another world size: ZeRO's files are cut by the saving world size, so rank 0 converts them once with
DeepSpeed's own `ds_to_universal` and every rank loads its new partition of each parameter from that
(`checkpoint.load_universal` in the DeepSpeed config, set by the trainer). Each rank then reads every
saved rank's state (the data state is re-derived from all of them, data.resize).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qvltrain.train.distributed import barrier

STEP_DIR = re.compile(r"^step_(\d{6,})$")
DEEPSPEED_TAG = "state"
UNIVERSAL_DIR = "universal"


@dataclass
class CheckpointConfig:
    """When to save, how many to keep, and how strict resume is."""

    every_steps: int = 0
    """Save every N optimizer steps (0: only at the end and on SIGTERM/SIGUSR1)."""
    keep_last: int = 3
    """Committed checkpoints kept; older ones are deleted after a new one commits (0 keeps all)."""
    resume: bool = True
    """Resume from RUN/checkpoints/latest when it exists (a run's own checkpoints win over init_from)."""
    save_at_end: bool = True
    """Save a checkpoint after the last step."""
    allow_world_size_change: bool = False
    """Resume even if the world size or data.num_workers differs: weights and Adam moments carry over
    (DeepSpeed's universal checkpoint), each dataset's epoch continues without repeating or losing a
    sample, but the data order differs from the original run's (docs/training.md)."""
    allow_data_change: bool = False
    """Resume even if the data config differs from the checkpoint's."""

    def __post_init__(self) -> None:
        if self.every_steps < 0:
            raise ValueError(f"train.checkpoint.every_steps={self.every_steps}: must be >= 0")
        if self.keep_last < 0:
            raise ValueError(f"train.checkpoint.keep_last={self.keep_last}: must be >= 0")


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_root(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def committed_steps(run_dir: str) -> list[int]:
    """Steps of the usable checkpoints, oldest first."""
    root = checkpoint_root(run_dir)
    if not os.path.isdir(root):
        return []
    steps = []
    for name in os.listdir(root):
        match = STEP_DIR.match(name)
        if match and os.path.exists(os.path.join(root, name, "COMMITTED")):
            steps.append(int(match.group(1)))
    return sorted(steps)


def latest_checkpoint(run_dir: str) -> str | None:
    """The checkpoint to resume from: `latest` if committed, else the newest committed step."""
    root = checkpoint_root(run_dir)
    latest = os.path.join(root, "latest")
    if os.path.islink(latest) and os.path.exists(os.path.join(latest, "COMMITTED")):
        return os.path.realpath(latest)
    steps = committed_steps(run_dir)
    return os.path.join(root, f"step_{steps[-1]:06d}") if steps else None


def save_checkpoint(
    engine,
    run_dir: str,
    step: int,
    rank: int,
    rank_state: dict[str, Any],
    meta: dict[str, Any],
    keep_last: int,
    hf_config=None,
) -> str:
    """Collective: every rank calls it. Returns the checkpoint directory."""
    directory = os.path.join(checkpoint_root(run_dir), f"step_{step:06d}")
    if rank == 0:
        if os.path.isdir(directory):  # an uncommitted leftover of a crash at this very step
            shutil.rmtree(directory)
        os.makedirs(directory)
    barrier()
    engine.save_checkpoint(os.path.join(directory, "deepspeed"), tag=DEEPSPEED_TAG, save_latest=False)
    torch.save({**rank_state, "rng": rng_state()}, os.path.join(directory, f"rank_{rank:05d}.pt"))
    if rank == 0:
        with open(os.path.join(directory, "meta.json"), "w") as meta_file:
            json.dump(meta, meta_file, indent=1, sort_keys=True, default=str)
        if hf_config is not None:  # what launch/export_hf.py builds the model from
            hf_config.save_pretrained(os.path.join(directory, "hf_config"))
    if os.environ.get("QVLTRAIN_TEST_CRASH_BEFORE_COMMIT") == f"{step}:{rank}":
        os._exit(9)  # fault injection for the tests: die with the checkpoint half written
    barrier()  # every rank's files are on disk before the checkpoint is declared usable
    if rank == 0:
        _fsync_write(os.path.join(directory, "COMMITTED"), f"{step}\n")
        _point_latest(run_dir, directory)
        _prune(run_dir, keep_last)
    barrier()
    return directory


def load_checkpoint(engine, directory: str, rank: int) -> dict[str, Any]:
    """Collective: restore engine (weights, optimizer), this rank's RNG; returns its saved state."""
    load_path, _ = engine.load_checkpoint(os.path.join(directory, "deepspeed"), tag=DEEPSPEED_TAG)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed could not load the checkpoint in {directory}")
    rank_file = os.path.join(directory, f"rank_{rank:05d}.pt")
    if not os.path.exists(rank_file):
        raise ValueError(f"{rank_file} does not exist: the checkpoint was written by fewer ranks")
    state = torch.load(rank_file, weights_only=False)
    set_rng_state(state.pop("rng"))
    return state


def load_universal_config(ds_config: dict[str, Any]) -> dict[str, Any]:
    """`ds_config` for an engine that will load a checkpoint written by another number of ranks."""
    return {**ds_config, "checkpoint": {**ds_config.get("checkpoint", {}), "load_universal": True}}


def convert_to_universal(directory: str, rank: int) -> str:
    """Collective: DIR/universal, DeepSpeed's universal checkpoint of DIR/deepspeed (made by rank 0 on
    first use, atomically: a crash while converting leaves no half-made folder that would be used)."""
    target = os.path.join(directory, UNIVERSAL_DIR)
    if rank == 0 and not os.path.isdir(target):
        import argparse

        from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

        temporary = target + ".tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        arguments = argparse.Namespace(
            input_folder=os.path.join(directory, "deepspeed", DEEPSPEED_TAG),
            output_folder=os.path.join(temporary, DEEPSPEED_TAG),
            num_extract_workers=1,
            num_merge_workers=1,
            keep_temp_folder=False,
            strict=True,
            inject_missing_state=True,  # ZeRO-1/2: the universal info a Megatron client would add
        )
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                ds_to_universal(arguments)
        except Exception as error:
            raise RuntimeError(
                f"DeepSpeed's ds_to_universal could not convert {arguments.input_folder}: {error}\n"
                f"{log.getvalue()[-3000:]}"
            ) from error
        os.replace(temporary, target)
        print(f"[qvltrain] converted {directory}/deepspeed to a universal checkpoint", flush=True)
    barrier()
    return target


def load_resized_checkpoint(engine, directory: str, rank: int, seed: int) -> list[dict[str, Any]]:
    """Collective: restore the engine from a checkpoint written by another number of ranks; returns
    every saved rank's state (the caller re-derives its own from all of them).

    Kept: every trainable weight in fp32 and its Adam moments and step count; the module groups'
    learning rates and weight decay are this run's config (DeepSpeed's universal loader copies the
    first group's values to all, which is undone here). Frozen weights are not in the universal
    checkpoint (it holds the optimizer's parameters only): they are rebuilt as the run built them
    (model.init_from or the seeded initialisation), which is what the saving run trained with
    (invariant 8). The global RNGs are re-seeded from (train.seed, rank, step).
    """
    if not engine.load_universal_checkpoint():
        raise ValueError("the engine was not built to load a universal checkpoint (load_universal_config)")
    universal = convert_to_universal(directory, rank)
    ours = [{k: v for k, v in group.items() if k != "params"} for group in engine.optimizer.param_groups]
    load_path, _ = engine.load_checkpoint(universal, tag=DEEPSPEED_TAG)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed could not load the universal checkpoint in {universal}")
    for group, values in zip(engine.optimizer.param_groups, ours, strict=True):
        group.update(values)
    _unshare_step_counts(engine.optimizer)
    meta = read_meta(directory)
    states = read_rank_states(directory, meta["world_size"])
    reseed(seed, rank, meta["step"])
    return states


def read_rank_states(directory: str, world_size: int) -> list[dict[str, Any]]:
    """Every saved rank's state (data state, counters, RNG), rank 0 first."""
    states = []
    for rank in range(world_size):
        rank_file = os.path.join(directory, f"rank_{rank:05d}.pt")
        if not os.path.exists(rank_file):
            raise ValueError(f"{rank_file} does not exist, but meta.json says {world_size} ranks wrote")
        states.append(torch.load(rank_file, weights_only=False))
    return states


def _unshare_step_counts(zero_optimizer) -> None:
    """DeepSpeed's universal loader gives every parameter group the same `step` tensor object; torch's
    Adam adds 1 to it in place for each group, so the shared counter would run ahead."""
    inner = getattr(zero_optimizer, "optimizer", zero_optimizer)
    for state in inner.state.values():
        if isinstance(state.get("step"), torch.Tensor):
            state["step"] = state["step"].clone()


def reseed(seed: int, rank: int, step: int) -> None:
    """The global RNGs from (seed, rank, step): what a resumed rank without a saved RNG state uses."""
    value = random.Random(f"{seed}-rank-{rank}-step-{step}").getrandbits(63)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def read_meta(directory: str) -> dict[str, Any]:
    with open(os.path.join(directory, "meta.json")) as meta_file:
        return json.load(meta_file)


def _fsync_write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _point_latest(run_dir: str, directory: str) -> None:
    root = checkpoint_root(run_dir)
    temporary = os.path.join(root, "latest.tmp")
    if os.path.lexists(temporary):
        os.remove(temporary)
    os.symlink(os.path.basename(directory), temporary)
    os.replace(temporary, os.path.join(root, "latest"))  # atomic on POSIX


def _prune(run_dir: str, keep_last: int) -> None:
    if keep_last == 0:
        return
    root = checkpoint_root(run_dir)
    for step in committed_steps(run_dir)[:-keep_last]:
        shutil.rmtree(os.path.join(root, f"step_{step:06d}"), ignore_errors=True)
