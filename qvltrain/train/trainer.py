"""The training loop: build everything from a typed Config, step DeepSpeed, log metrics."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
import yaml

from qvltrain.batch import PackedBatch
from qvltrain.model.family import get_family
from qvltrain.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_resized_checkpoint,
    load_universal_config,
    read_meta,
    read_rank_states,
    save_checkpoint,
)
from qvltrain.train.config import Config
from qvltrain.train.deepspeed_config import deepspeed_config
from qvltrain.train.distributed import all_reduce_sum, barrier, init_distributed, publish_rank
from qvltrain.train.engine import build_engine
from qvltrain.train.flops import balance_cost_model, device_peak_flops
from qvltrain.train.loggers import MetricsLogger
from qvltrain.train.metrics import StepCounts, WaitClock, peak_memory_gb
from qvltrain.train.progress import ProgressBar
from qvltrain.train.schedule import lr_multiplier
from qvltrain.train.signals import StopRequest
from qvltrain.train.validation import validation_metrics

REQUEUE_MARKER_ENV = "QVLTRAIN_REQUEUE_MARKER"
"""Environment variable naming a file rank 0 creates after a checkpoint on SIGTERM/SIGUSR1.

Every rank then exits with status 0: a non-zero status from one rank would make `srun
--kill-on-bad-exit` kill the others while they are still finishing, and the job would look failed.
The scheduler script requeues when the file exists (launch/slurm/train.sbatch).
"""


def run_stage(config: Config, resolved_config: dict[str, Any], trainer_class: type[Trainer] | None = None):
    """Train one stage on this rank and leave the process group on a clean end (launch/train.py)."""
    from qvltrain.train.distributed import shutdown_distributed

    try:
        (trainer_class or Trainer)(config, resolved_config).fit()
    except SystemExit as stop:  # a stop request (SIGTERM, SLURM pre-emption) ends with exit(0)
        if not stop.code:
            shutdown_distributed()
        raise
    # Only on a clean end: after an error the other ranks may sit in a collective, and with NCCL
    # leaving the group could then wait on them; the launcher tears the failed job down instead.
    shutdown_distributed()


class Trainer:
    """Runs one stage: `Trainer(config, resolved).fit()` on every rank."""

    def __init__(self, config: Config, resolved_config: dict[str, Any]):
        self.config = config
        self.rank, self.world_size, self.local_rank = init_distributed()
        self.on_gpu = torch.cuda.is_available()
        self.device = torch.device("cuda", self.local_rank) if self.on_gpu else torch.device("cpu")
        self.run_dir = os.path.abspath(config.train.run_dir)
        if self.rank == 0:
            os.makedirs(self.run_dir, exist_ok=True)
            with open(os.path.join(self.run_dir, "config.yaml"), "w") as config_file:
                yaml.safe_dump(resolved_config, config_file, sort_keys=False)
        barrier()
        publish_rank(self.run_dir, self.rank, self.local_rank, self.world_size)

        from qvltrain.data.loader import TrainBatches
        from qvltrain.text.tokenizer import load_tokenizer

        self.tokenizer = load_tokenizer(config.model.tokenizer)
        ds_config = deepspeed_config(config, self.world_size, self.on_gpu)
        resume = config.train.checkpoint.resume
        self.resume_from = self._checkpoint_to_resume(resolved_config) if resume else None
        if self.resume_from is not None and self.resume_from[1]["world_size"] != self.world_size:
            ds_config = load_universal_config(ds_config)  # ZeRO partitions re-cut for this world size
        self.engine, trainable_numel = build_engine(
            config.model,
            config.stage,
            ds_config,
            self.tokenizer,
            seed=config.train.seed,
            weight_decay=config.train.weight_decay,
            adam_betas=config.train.adam_betas,
            adam_eps=config.train.adam_eps,
        )
        self.family = get_family(config.model.family)
        hf_config = self.engine.module.model.config
        self.model_shape = self.family.flops(hf_config)
        self.render_options = self.family.render_options(hf_config, config.model.position_rule)
        self.batches: Iterator[PackedBatch] = TrainBatches(
            config.data,
            config.stage.template,
            self.tokenizer,
            rank=self.rank,
            world_size=self.world_size,
            render_options=self.render_options,
            cost_model=balance_cost_model(self.model_shape, config.stage.trainable),
        )
        self.logger = MetricsLogger(
            config.logger, self.run_dir, config.stage.name, resolved_config, enabled=self.rank == 0
        )
        self.resolved_config = resolved_config
        self.pad_id = self.tokenizer.pad_token_id
        self.peak_flops = device_peak_flops(config.train.peak_flops)
        self.start_step = 0
        self.tokens_seen = 0
        self.num_nonfinite_steps = 0
        self.stop_request = StopRequest().install()
        if self.rank == 0:
            counts = ", ".join(f"{group} {numel:,}" for group, numel in trainable_numel.items())
            print(f"[qvltrain] stage {config.stage.name}: trainable parameters: {counts}", flush=True)
        if config.data.validation:
            self._validation_batches()  # fails now, not at the first validation, on a bad shard list
        if self.resume_from is not None:
            self._resume(*self.resume_from)

    # -- checkpoints ------------------------------------------------------------------------------

    def _meta(self, step: int) -> dict[str, Any]:
        import deepspeed
        import transformers

        return {
            "step": step,
            "tokens_seen": self.tokens_seen,
            "world_size": self.world_size,
            "stage": self.config.stage.name,
            "config": self.resolved_config,
            "versions": {
                "torch": torch.__version__,
                "deepspeed": deepspeed.__version__,
                "transformers": transformers.__version__,
            },
        }

    def _rank_state(self) -> dict[str, Any]:
        state_dict = getattr(self.batches, "state_dict", None)
        return {
            "data": state_dict() if state_dict is not None else None,
            "tokens_seen": self.tokens_seen,
            "num_nonfinite_steps": self.num_nonfinite_steps,
        }

    def save(self, step: int) -> str:
        directory = save_checkpoint(
            self.engine,
            self.run_dir,
            step,
            self.rank,
            self._rank_state(),
            self._meta(step),
            self.config.train.checkpoint.keep_last,
            hf_config=self.engine.module.model.config,
        )
        if self.rank == 0:
            print(f"[qvltrain] checkpoint committed: {directory}", flush=True)
        return directory

    def _checkpoint_to_resume(self, resolved_config: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The run's latest committed checkpoint and its meta.json, checked against this run."""
        directory = latest_checkpoint(self.run_dir)
        if directory is None:
            return None
        meta = read_meta(directory)
        checkpoint_config = self.config.train.checkpoint
        if meta["world_size"] != self.world_size and not checkpoint_config.allow_world_size_change:
            raise ValueError(
                f"{directory} was written by {meta['world_size']} ranks, this run has {self.world_size}: the data "
                "order would change. Resume anyway with train.checkpoint.allow_world_size_change=true (weights, "
                "Adam moments and each dataset's epoch carry over, docs/training.md), or start a new run directory"
            )
        saved_data, data = dict(meta["config"].get("data") or {}), dict(resolved_config.get("data") or {})
        if checkpoint_config.allow_world_size_change:  # the readers are re-derived for another split
            saved_data.pop("num_workers", None), data.pop("num_workers", None)
        if saved_data != data and not checkpoint_config.allow_data_change:
            raise ValueError(
                f"the data config differs from the one saved in {directory}/meta.json. Resume anyway with "
                "train.checkpoint.allow_data_change=true, or start a new run directory"
            )
        return directory, meta

    def _resume(self, directory: str, meta: dict[str, Any]) -> None:
        if meta["world_size"] == self.world_size:
            state, states = load_checkpoint(self.engine, directory, self.rank), None
        else:  # every saved rank's state: tokens_seen and the step counters are global (the same on all)
            states = load_resized_checkpoint(self.engine, directory, self.rank, self.config.train.seed)
            state = states[0]
        data = state.get("data")
        if data is not None and hasattr(self.batches, "load_state_dict"):
            if self.batches.resumes_exactly(data):
                self.batches.load_state_dict(data)
            elif not self.config.train.checkpoint.allow_world_size_change:
                self.batches.load_state_dict(data)  # raises, naming both splits
            else:  # each dataset's epoch goes on from what all saved readers consumed (data.resize)
                states = states or read_rank_states(directory, meta["world_size"])
                self.batches.load_resized_state([saved["data"] for saved in states])
        self.tokens_seen = state["tokens_seen"]
        self.num_nonfinite_steps = state["num_nonfinite_steps"]
        self.start_step = meta["step"]
        if self.rank == 0:
            how = (
                f" (written by {meta['world_size']} ranks, re-split for {self.world_size})" if states else ""
            )
            print(f"[qvltrain] resumed from {directory} at step {self.start_step}{how}", flush=True)

    def _set_learning_rates(self, step: int) -> dict[str, float]:
        multiplier = lr_multiplier(step, self.config.train.max_steps, self.config.train.schedule)
        rates = {}
        for group in self.engine.optimizer.param_groups:
            group["lr"] = group["peak_lr"] * multiplier
            rates[f"lr/{group['name']}"] = group["lr"]
        return rates

    def train_step(self, step: int) -> dict[str, Any]:
        """One optimizer step over `grad_accum_steps` micro-batches; returns its metrics."""
        grad_accum_steps = self.config.train.grad_accum_steps
        start = time.perf_counter()
        micro_batches = [next(self.batches) for _ in range(grad_accum_steps)]
        data_seconds = time.perf_counter() - start
        wait_clock = WaitClock(self.device)  # from here on, time not spent working is spent waiting
        # Invariant 4: the step loss is the sum of token losses over the global loss-token count.
        local_loss_tokens = sum(batch.num_loss_tokens for batch in micro_batches)
        (global_loss_tokens,) = all_reduce_sum([local_loss_tokens], self.device)
        rates = self._set_learning_rates(step)
        # DeepSpeed divides by grad_accum_steps in backward and averages gradients over ranks.
        scale = self.world_size * grad_accum_steps / max(global_loss_tokens, 1.0)
        local_loss_sum = 0.0
        for batch in micro_batches:
            loss_sum = self.micro_batch_loss(batch, step + 1)
            # A non-finite loss on any rank makes every rank's reduced gradient non-finite, and
            # DeepSpeed then skips the optimizer step on all of them (its grad norm is global).
            self.engine.backward(loss_sum * scale)
            self.engine.step()
            local_loss_sum += float(loss_sum.detach())
        work_wait = wait_clock.read()  # None on a GPU
        counts = StepCounts()
        for batch in micro_batches:
            counts.add_batch(batch, self.model_shape, self.config.stage.trainable, self.pad_id)
        # Each rank's work in its own slot, so every rank sees all of them after the sum.
        works = [0.0] * self.world_size
        works[self.rank], wait_seconds = work_wait or (0.0, 0.0)
        wait_share = wait_seconds / (time.perf_counter() - start)
        global_loss_sum, stop_votes, wait_share_sum, *global_values = all_reduce_sum(
            [local_loss_sum, float(self.stop_request.requested), wait_share, *works, *counts.as_list()],
            self.device,
        )
        works, global_counts = global_values[: self.world_size], global_values[self.world_size :]
        counts = StepCounts.from_list(global_counts)
        global_real_tokens = counts.real_tokens
        seconds = time.perf_counter() - start
        grad_norm = self.engine.get_global_grad_norm()
        grad_norm = float(grad_norm) if grad_norm is not None else float("nan")
        loss = global_loss_sum / max(global_loss_tokens, 1.0)
        # Both numbers are global, so every rank takes the same decision here.
        skipped = not (math.isfinite(loss) and math.isfinite(grad_norm))
        self.num_nonfinite_steps += int(skipped)
        if not skipped:
            self.tokens_seen += int(global_real_tokens)
        return {
            "step": step + 1,
            "loss": loss,
            "grad_norm": grad_norm,
            "skipped_nonfinite": int(skipped),
            "stop_requested": int(stop_votes > 0),
            "tokens_per_s": global_real_tokens / seconds,
            "samples_per_s": counts.samples / seconds,
            "vision_patches_per_s": counts.patches / seconds,
            "packing_efficiency": counts.real_tokens / max(counts.slots, 1.0),
            "mfu": counts.flops / seconds / (self.peak_flops * self.world_size) if self.peak_flops else None,
            "model_tflops_per_s": counts.flops / seconds / 1e12,
            "loss_tokens": int(global_loss_tokens),
            "tokens_seen": self.tokens_seen,
            "data_wait_share": data_seconds / seconds,
            # CPU ranks: the mean share of the step a rank spent blocked at collectives, and the
            # ranks' work balance (mean / max CPU work; 1 = no rank waits for another).
            "rank_wait_share": wait_share_sum / self.world_size if work_wait is not None else None,
            "rank_work_balance": sum(works) / self.world_size / max(max(works), 1e-9) if work_wait else None,
            "step_seconds": seconds,
            "peak_memory_gb": peak_memory_gb(self.device),
            **rates,
        }

    def skip_counts(self) -> dict[str, float]:
        """Skipped samples by reason (`skipped/<reason>`), summed over ranks, and the realised mixture
        (`mixture/<dataset>`: each dataset's share of the samples trained on so far) (collective)."""
        local = {f"skipped/{reason}": count for reason, count in getattr(self.batches, "skips", {}).items()}
        local.update({f"mixture/{name}": n for name, n in getattr(self.batches, "mixture", {}).items()})
        gathered: list[dict[str, int]] = [{} for _ in range(self.world_size)]
        torch.distributed.all_gather_object(gathered, local)
        total: dict[str, float] = {}
        for counts in gathered:
            for name, count in counts.items():
                total[name] = total.get(name, 0) + count
        num_samples = sum(count for name, count in total.items() if name.startswith("mixture/"))
        for name in [name for name in total if name.startswith("mixture/")]:
            total[name] = total[name] / max(num_samples, 1)
        return total

    def _validation_batches(self):
        from qvltrain.data.loader import TrainBatches

        data = self.config.data
        return TrainBatches(
            data,
            self.config.stage.template,
            self.tokenizer,
            self.rank,
            self.world_size,
            datasets=data.validation,
            render_options=self.render_options,
        )

    def micro_batch_loss(self, batch: PackedBatch, step: int) -> torch.Tensor:
        """Forward of one micro-batch of (1-based) `step`: its summed token loss.

        The seam fault-injection tests override (tests/train/faulty_entry.py); nothing else does.
        """
        loss_sum, _, _ = self.engine(batch.to(self.device))
        return loss_sum

    def validation_loss(self) -> dict[str, float]:
        if not self.config.data.validation or self.config.train.validation.num_batches == 0:
            return {}
        return validation_metrics(
            self.engine, self._validation_batches, self.config.train.validation.num_batches, self.device
        )

    def fit(self) -> list[dict[str, Any]]:
        history = []
        train_config = self.config.train
        max_steps = train_config.max_steps
        progress = ProgressBar(max_steps - self.start_step, enabled=self.rank == 0)
        step = self.start_step
        while step < max_steps:
            metrics = self.train_step(step)
            step += 1
            history.append(metrics)
            validate_every = train_config.validation.every_steps
            if (validate_every and step % validate_every == 0) or step == max_steps:
                metrics.update(self.validation_loss())
            if step % self.config.logger.log_every == 0 or step == max_steps:
                metrics.update(self.skip_counts())
                self.logger.log(metrics)
            progress.update(metrics)
            if self.num_nonfinite_steps > train_config.max_nonfinite_steps:
                raise RuntimeError(
                    f"{self.num_nonfinite_steps} steps had a non-finite loss or gradient norm (budget "
                    f"train.max_nonfinite_steps={train_config.max_nonfinite_steps}); stopping at step {step}. "
                    "Lower the learning rate or look for bad data around this step."
                )
            every = train_config.checkpoint.every_steps
            if metrics["stop_requested"]:
                self.save(step)
                if self.rank == 0:
                    print(
                        f"[qvltrain] stopped at step {step} on request ({self.stop_request.signal_name or 'another rank'})",
                        flush=True,
                    )
                progress.close()
                self.logger.close()
                marker = os.environ.get(REQUEUE_MARKER_ENV)
                if marker and self.rank == 0:
                    with open(marker, "w") as marker_file:
                        marker_file.write(f"{step}\n")
                barrier()
                sys.exit(0)
            if (every and step % every == 0) or (step == max_steps and train_config.checkpoint.save_at_end):
                self.save(step)
        progress.close()
        self.logger.close()
        if self.rank == 0 and history:
            first, last = history[0]["loss"], history[-1]["loss"]
            print(
                f"[qvltrain] loss {first:.4f} -> {last:.4f} over steps {self.start_step + 1}..{max_steps}",
                flush=True,
            )
        if self.rank == 0:
            print(f"[qvltrain] run directory: {self.run_dir}", flush=True)
        barrier()
        self.stop_request.uninstall()
        return history
