"""One variant of the training benchmark in this process: `python -m apps.bench.train_run`.

`apps.bench.train` starts one process per variant, so each variant's peak memory is its own.
Both variants build the same model (same flavor, same seed) under the same DeepSpeed ZeRO-3 engine
(world of one, `conf/deepspeed/zero3.yaml`, bf16 on GPU, fp32 on CPU) with the same optimizer
(AdamW over the trainer's parameter groups, every group trainable: the full_pretrain stage), and run
the same optimizer steps over the same samples:

- baseline, "as users run today": `samples_per_micro_batch` samples per micro-batch (default 1)
  padded to the longest with an attention mask, gradient accumulation over the step's micro-batches,
  transformers' own forward with `sdpa` attention, its M-RoPE computed in the forward, full logits and
  its cross-entropy (`labels=`), the vision tower called once per image or video;
- packed (qvltrain): one pack of seq_len tokens per step, `VisionLanguageTrainModule` (packed
  attention, the tower once per micro-batch, chunked loss over trained tokens only).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from apps.bench.step_profile import DATA, GLUE, LOSS_BACKWARD, OPTIMIZER, PhaseClock, attach
from apps.bench.train_data import BenchSteps, PaddedBatch, bench_steps, pad_samples
from qvltrain.data.batch import pack_samples
from qvltrain.data.decode import DecodedSample
from qvltrain.model.config import ModelConfig
from qvltrain.model.family import MODULE_GROUPS, FlopModel, get_family
from qvltrain.train.distributed import init_distributed
from qvltrain.train.flops import device_peak_flops, training_flops
from qvltrain.train.metrics import peak_memory_gb
from qvltrain.train.stages import StageConfig
from qvltrain.vision.device import patches_to_pixel_values

VARIANTS = ("baseline", "packed")
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@dataclass
class RunOptions:
    """One variant's run (the parent passes the same values to both)."""

    variant: str
    """baseline or packed."""
    flavor: str = "tiny"
    """Model config conf/model/FLAVOR.yaml (its family and flavor), randomly initialised: weights do not
    change speed."""
    seq_len: int = 8192
    """Tokens per pack (and the longest sample admitted)."""
    num_tokens: int = 40_000
    """Real tokens to train on (samples are drawn until the sum reaches it)."""
    activation_checkpointing: str | None = None
    """none, llm, vision or both; None takes the flavor's setting."""
    samples_per_micro_batch: int = 1
    """Baseline only: samples per micro-batch, padded to the longest."""
    warmup_steps: int = 1
    """Untimed steps first (the first steps' data again), for allocator and kernel warm-up."""
    rounds: int = 2
    """Timed passes over all steps; the fastest counts (a shared machine's load comes and goes)."""
    peak_flops: float | None = None
    """Device peak FLOP/s for MFU; None looks the GPU up in qvltrain.train.flops (unknown on CPU)."""
    profile: bool = True
    """After the timed steps, one more step (the first) with phase timers."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r}: expected one of {', '.join(VARIANTS)}")
        if min(self.samples_per_micro_batch, self.num_tokens, self.rounds) < 1 or self.warmup_steps < 0:
            raise ValueError("samples_per_micro_batch, num_tokens and rounds must be >= 1, warmup_steps >= 0")


def flavor_config(flavor: str, activation_checkpointing: str | None) -> ModelConfig:
    """conf/model/FLAVOR.yaml as a ModelConfig; the bundled tokenizer (only its special ids matter)."""
    values = yaml.safe_load((CONF_DIR / "model" / f"{flavor}.yaml").read_text())
    values["tokenizer"] = None
    if activation_checkpointing is not None:
        values["activation_checkpointing"] = activation_checkpointing
    return ModelConfig(**values)


class BaselineModule(nn.Module):
    """transformers' forward as a training script calls it; returns the micro-batch's share of the step loss."""

    def __init__(self, model: nn.Module, visual: nn.Module):
        super().__init__()
        self.model = model
        self.visual = visual  # the family's vision tower (a submodule of `model`)

    def forward(self, batch: PaddedBatch, num_step_loss_tokens: int) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        visual = self.visual
        features: dict[str, list[torch.Tensor]] = {"image": [], "video": []}
        grids: dict[str, list[tuple[int, int, int]]] = {"image": [], "video": []}
        for patches in batch.patches:
            kind = "image" if patches.temporal_repeat == 2 else "video"
            grid_thw = torch.tensor([patches.grid_thw], device=batch.input_ids.device)
            output = visual(patches_to_pixel_values(patches), grid_thw=grid_thw)
            features[kind].append(output.pooler_output)
            grids[kind].append(patches.grid_thw)
        device = batch.input_ids.device
        output = self.model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            labels=batch.labels,
            mm_token_type_ids=batch.mm_token_type_ids,
            image_grid_thw=torch.tensor(grids["image"], device=device) if grids["image"] else None,
            video_grid_thw=torch.tensor(grids["video"], device=device) if grids["video"] else None,
            mm_encoder_outputs={
                kind: BaseModelOutputWithPooling(pooler_output=tensors)
                for kind, tensors in features.items()
                if tensors
            },
            # Sum over tokens / the step's loss tokens: the same loss as the packed path (invariant 4).
            num_items_in_batch=num_step_loss_tokens,
        )
        return output.loss


def build_engine(options: RunOptions, model_config: ModelConfig, tokenizer, on_gpu: bool):
    """The trainer's own engine (qvltrain.train.engine), with the baseline's module in variant (a)."""
    from qvltrain.model.common.train_module import enable_activation_checkpointing
    from qvltrain.train.deepspeed_config import RunValues, resolve_deepspeed_config
    from qvltrain.train.engine import build_engine as build_training_engine

    base = yaml.safe_load((CONF_DIR / "deepspeed" / "zero3.yaml").read_text())
    # One micro-batch per engine step in DeepSpeed's count; the loop sets the accumulation boundary.
    ds_config = resolve_deepspeed_config(
        base, RunValues(micro_batch_size=1, grad_accum_steps=1, world_size=1, on_gpu=on_gpu)
    )
    stage = StageConfig(name="full_pretrain", trainable=list(MODULE_GROUPS), template="plain")

    def baseline(model):
        enable_activation_checkpointing(model, model_config.activation_checkpointing)
        return BaselineModule(model, get_family(model_config.family).parts(model)["vision_tower"])

    engine, _ = build_training_engine(
        model_config,
        stage,
        ds_config,
        tokenizer,
        seed=options.seed,
        weight_decay=0.1,
        adam_betas=(0.9, 0.95),
        wrap=None if options.variant == "packed" else baseline,
    )
    return engine


def micro_batches(options: RunOptions, step: list[DecodedSample], pad_id: int) -> list:
    """Host-side micro-batches of one step (the loader's work, done before the clock starts)."""
    if options.variant == "packed":
        return [pack_samples(step, options.seq_len, pad_id)]
    k = options.samples_per_micro_batch
    return [pad_samples(step[i : i + k], pad_id) for i in range(0, len(step), k)]


def train_step(engine, options: RunOptions, batches: list, device, clock: PhaseClock | None = None) -> float:
    """Forward, backward and optimizer step over one step's micro-batches; returns the loss."""
    mark = clock.mark if clock is not None else (lambda phase: None)
    num_loss_tokens = max(1, sum(batch.num_loss_tokens for batch in batches))
    loss_total = 0.0
    for index, host_batch in enumerate(batches):
        mark(DATA)
        batch = host_batch.to(device)
        engine.set_gradient_accumulation_boundary(index == len(batches) - 1)
        mark(GLUE)
        if options.variant == "packed":
            loss_sum, _, _ = engine(batch)
            loss = loss_sum / num_loss_tokens
        else:
            loss = engine(batch, num_loss_tokens)
        mark(LOSS_BACKWARD)
        engine.backward(loss)
        mark(OPTIMIZER)
        engine.step()  # a no-op before the boundary
        loss_total += float(loss.detach())
    mark(None)
    return loss_total


def step_flops(shape: FlopModel, steps: BenchSteps) -> float:
    """Model FLOPs of all steps, counted as the trainer counts them (identical for both variants)."""
    total = 0.0
    for sample in steps.samples:
        grids = [p.grid_thw for p in sample.patches]
        length = len(sample.input_ids)
        total += training_flops(shape, [length], length, grids, list(MODULE_GROUPS))
    return total


def run(options: RunOptions) -> dict:
    init_distributed()
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    from qvltrain.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(None)
    model_config = flavor_config(options.flavor, options.activation_checkpointing)
    family = get_family(model_config.family)
    steps = bench_steps(tokenizer, options.seq_len, options.num_tokens, options.seed)
    engine = build_engine(options, model_config, tokenizer, on_gpu)
    engine.train()
    host_steps = [micro_batches(options, step, tokenizer.pad_token_id) for step in steps.steps]

    def synchronize() -> None:
        if on_gpu:
            torch.cuda.synchronize()

    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    for index in range(options.warmup_steps):
        train_step(engine, options, host_steps[index % len(host_steps)], device)
    synchronize()
    passes = []  # per round: (step seconds, losses)
    for _ in range(options.rounds):
        step_seconds, losses = [], []
        for batches in host_steps:
            start = time.perf_counter()
            losses.append(train_step(engine, options, batches, device))
            synchronize()
            step_seconds.append(time.perf_counter() - start)
        passes.append((step_seconds, losses))
    step_seconds, losses = min(passes, key=lambda item: sum(item[0]))
    seconds = sum(step_seconds)
    result = {
        "options": asdict(options),
        "device": torch.cuda.get_device_name(device)
        if on_gpu
        else f"CPU, {torch.get_num_threads()} torch threads",
        "peak_flops": device_peak_flops(options.peak_flops),
        "activation_checkpointing": model_config.activation_checkpointing,
        "dtype": "bf16" if on_gpu else "fp32",
        "num_steps": len(host_steps),
        "num_micro_batches": sum(len(batches) for batches in host_steps),
        "num_samples": len(steps.samples),
        "real_tokens": steps.num_real_tokens,
        "visual_token_share": steps.visual_token_share,
        "pack_efficiency": steps.packing_efficiency,
        "token_slots": sum(batch.input_ids.numel() for batches in host_steps for batch in batches),
        "seconds": seconds,
        "step_seconds": step_seconds,
        "round_seconds": [sum(item[0]) for item in passes],
        "tokens_per_s": steps.num_real_tokens / seconds,
        "model_flops": step_flops(family.flops(engine.module.model.config), steps),
        "peak_memory_gb": peak_memory_gb(device),
        "losses": losses,
    }
    if options.profile:
        clock = PhaseClock(synchronize=on_gpu)
        handles = attach(clock, family.parts(engine.module.model))
        start = time.perf_counter()
        train_step(engine, options, host_steps[0], device, clock)
        profiled_seconds = time.perf_counter() - start
        for handle in handles:
            handle.remove()
        start = time.perf_counter()
        micro_batches(options, steps.steps[0], tokenizer.pad_token_id)
        result["profile"] = {
            "step": 0,
            "real_tokens": sum(len(sample.input_ids) for sample in steps.steps[0]),
            "seconds": profiled_seconds,
            "phases": clock.seconds,
            # Batch assembly on the host (pack or pad): loader-worker work, outside the timed step.
            "host_batch_assembly_s": time.perf_counter() - start,
        }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--flavor", default="tiny")
    parser.add_argument("--seq-len", type=int, default=8192)
    parser.add_argument("--num-tokens", type=int, default=40_000)
    parser.add_argument("--activation-checkpointing", default=None)
    parser.add_argument("--samples-per-micro-batch", type=int, default=1)
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--peak-flops", type=float, default=None)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--result", type=Path, required=True, help="where to write this variant's JSON")
    args = parser.parse_args(argv)
    options = RunOptions(
        variant=args.variant,
        flavor=args.flavor,
        seq_len=args.seq_len,
        num_tokens=args.num_tokens,
        activation_checkpointing=args.activation_checkpointing,
        samples_per_micro_batch=args.samples_per_micro_batch,
        warmup_steps=args.warmup_steps,
        rounds=args.rounds,
        peak_flops=args.peak_flops,
        profile=not args.no_profile,
        seed=args.seed,
    )
    result = run(options)
    args.result.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    import os

    main()
    os._exit(0)  # skip the slow teardown of the process group
