"""The dict `deepspeed.initialize` takes: a conf/deepspeed/*.yaml group or a user's own DeepSpeed JSON.

    ds_config = deepspeed_config(config, world_size=2, on_gpu=False)

Our config is the one source of truth; a DeepSpeed config may only restate it. Every value both
can state is filled where the DeepSpeed config says "auto" (as the HF Trainer does) or leaves it out,
and refused with an error naming both values and where they come from where they differ: batch
sizes, gradient clipping, precision, and the optimizer and scheduler sections (qvltrain always steps
its own AdamW with per-module-group learning rates and its own schedule, a pure function of the
step, so those sections are checked against train.* and stage.* and then dropped).
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qvltrain.train.config import Config

AUTO = "auto"
CONFIG_FILE_KEY = "config_file"
"""Key of the deepspeed group naming a user's JSON (deepspeed.config_file=PATH); never passed on."""
ADAM_TYPES = ("adam", "adamw")
SCHEDULE_DESCRIPTION = (
    "qvltrain's schedule (linear warmup over train.schedule.warmup_steps, cosine decay to "
    "train.schedule.min_lr_ratio at train.max_steps, a pure function of the step for exact resume)"
)


@dataclass(frozen=True)
class RunValues:
    """What the rest of a run's config says about values a DeepSpeed config may also state."""

    micro_batch_size: int
    """Packs per micro-batch (data.micro_batch_size)."""
    grad_accum_steps: int
    """Micro-batches per optimizer step and rank (train.grad_accum_steps)."""
    world_size: int
    """Ranks of the run."""
    on_gpu: bool
    """bf16 on GPU, fp32 on CPU."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (train.max_grad_norm; 0 disables)."""
    hidden_size: int | None = None
    """LLM hidden size (of model.flavor and model.arch), for the ZeRO bucket sizes written as "auto"."""
    learning_rates: dict[str, float] = field(default_factory=dict)
    """Peak learning rate of each trainable module group (stage.lr_<group>)."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """train.adam_betas."""
    adam_eps: float = 1e-8
    """train.adam_eps."""
    weight_decay: float = 0.1
    """train.weight_decay."""
    max_steps: int | None = None
    """train.max_steps."""
    warmup_steps: int | None = None
    """train.schedule.warmup_steps."""
    min_lr_ratio: float | None = None
    """train.schedule.min_lr_ratio."""

    @classmethod
    def from_config(cls, config: Config, world_size: int, on_gpu: bool) -> RunValues:
        train, stage = config.train, config.stage
        return cls(
            micro_batch_size=config.data.micro_batch_size,
            grad_accum_steps=train.grad_accum_steps,
            world_size=world_size,
            on_gpu=on_gpu,
            max_grad_norm=train.max_grad_norm,
            hidden_size=config.model.architecture.hidden_size,
            learning_rates={group: stage.learning_rate(group) for group in stage.trainable} if stage else {},
            adam_betas=(float(train.adam_betas[0]), float(train.adam_betas[1])),
            adam_eps=train.adam_eps,
            weight_decay=train.weight_decay,
            max_steps=train.max_steps,
            warmup_steps=train.schedule.warmup_steps,
            min_lr_ratio=train.schedule.min_lr_ratio,
        )


def deepspeed_config(config: Config, world_size: int, on_gpu: bool) -> dict[str, Any]:
    """The run's DeepSpeed dict: deepspeed.config_file's JSON when set, else the deepspeed group."""
    base = dict(config.deepspeed)
    config_file = base.pop(CONFIG_FILE_KEY, None)
    values = RunValues.from_config(config, world_size, on_gpu)
    if config_file:
        return resolve_deepspeed_config(load_json_config(config_file), values, source=str(config_file))
    return resolve_deepspeed_config(base, values, source="the deepspeed config group (deepspeed.*)")


def load_json_config(path: str) -> dict[str, Any]:
    """A user's DeepSpeed JSON, with errors that name the file (and the line of a syntax error)."""
    if not os.path.isfile(path):
        raise ValueError(
            f"deepspeed.config_file={path!r}: no such file (relative paths start at {os.getcwd()})"
        )
    with open(path) as handle:
        try:
            loaded = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"deepspeed.config_file={path!r}: not valid JSON at line {error.lineno} column {error.colno}: {error.msg}"
            ) from None
    if not isinstance(loaded, dict):
        raise ValueError(
            f"deepspeed.config_file={path!r}: expected a JSON object, got {type(loaded).__name__}"
        )
    return loaded


def resolve_deepspeed_config(
    base: dict[str, Any], values: RunValues, source: str = "deepspeed"
) -> dict[str, Any]:
    """Fill "auto" (and left-out) values from `values`, refuse conflicting ones, drop the optimizer and
    scheduler sections after checking them; `source` names the config in errors."""
    config = copy.deepcopy(base)
    config.pop(CONFIG_FILE_KEY, None)
    fill = _Filler(config, source)
    micro, accum, world = values.micro_batch_size, values.grad_accum_steps, values.world_size
    fill.value(("train_micro_batch_size_per_gpu",), micro, "data.micro_batch_size")
    fill.value(("gradient_accumulation_steps",), accum, "train.grad_accum_steps")
    fill.value(
        ("train_batch_size",),
        micro * accum * world,
        f"data.micro_batch_size x train.grad_accum_steps x world size ({micro} x {accum} x {world})",
    )
    fill.value(("gradient_clipping",), values.max_grad_norm, "train.max_grad_norm")
    _fill_precision(fill, values.on_gpu)
    _fill_zero(fill, values.hidden_size)
    _check_optimizer(fill, values)
    _check_scheduler(fill, values)
    leftover = _auto_paths(config)
    if leftover:
        raise ValueError(
            f'{source}: {", ".join(leftover)} {"is" if len(leftover) == 1 else "are"} "auto" but qvltrain has no '
            "value for it: write a number"
        )
    stage = config.get("zero_optimization", {}).get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"{source}: zero_optimization.stage={stage!r}: expected 0, 1, 2 or 3")
    if not values.on_gpu:
        # DeepSpeed's fused optimizers are CUDA-only; torch's AdamW is exact and fine at CPU scale.
        config["zero_allow_untested_optimizer"] = True
    return config


def is_zero3(config: dict[str, Any]) -> bool:
    return config.get("zero_optimization", {}).get("stage") == 3


def offloads_optimizer(config: dict[str, Any]) -> bool:
    """Whether ZeRO keeps the optimizer states in CPU memory (or NVMe) and steps them there."""
    offload = config.get("zero_optimization", {}).get("offload_optimizer") or {}
    return offload.get("device", "none") in ("cpu", "nvme")


def uses_cpu_adam(config: dict[str, Any]) -> bool:
    """An offloaded optimizer is DeepSpeed's vectorised CPU Adam, as DeepSpeed itself insists unless the
    config sets zero_force_ds_cpu_optimizer to false."""
    return offloads_optimizer(config) and config.get("zero_force_ds_cpu_optimizer", True) is not False


class _Filler:
    """Writes our value where the config says "auto" or nothing, refuses a different one."""

    def __init__(self, config: dict[str, Any], source: str):
        self.config, self.source = config, source

    def get(self, path: tuple[str, ...]) -> Any:
        node: Any = self.config
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def value(self, path: tuple[str, ...], ours: Any, ours_name: str, *, fill_missing: bool = True) -> None:
        theirs = self.get(path)
        if theirs is None and not fill_missing:
            return
        if theirs is None or theirs == AUTO:
            node = self.config
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = ours
            return
        if not _same(theirs, ours):
            raise ValueError(
                f"{self.source}: {'.'.join(path)}={theirs!r} conflicts with {ours_name}={ours!r}; make them agree "
                f'(or write "auto" in the DeepSpeed config to take ours)'
            )

    def refuse(self, path: tuple[str, ...], why: str) -> None:
        raise ValueError(f"{self.source}: {'.'.join(path)}={self.get(path)!r}: {why}")


def _same(theirs: Any, ours: Any) -> bool:
    if isinstance(theirs, (list, tuple)) and isinstance(ours, (list, tuple)):
        return len(theirs) == len(ours) and all(_same(a, b) for a, b in zip(theirs, ours, strict=True))
    if isinstance(theirs, bool) or isinstance(ours, bool):
        return theirs is ours
    if isinstance(theirs, (int, float)) and isinstance(ours, (int, float)):
        return math.isclose(theirs, ours, rel_tol=1e-9, abs_tol=0.0)
    return theirs == ours


def _fill_precision(fill: _Filler, on_gpu: bool) -> None:
    if fill.get(("fp16", "enabled")) not in (None, AUTO, False):
        fill.refuse(
            ("fp16", "enabled"), "qvltrain trains in bf16 on GPU and fp32 on CPU; fp16 is not supported"
        )
    if fill.get(("amp", "enabled")) not in (None, AUTO, False):
        fill.refuse(
            ("amp", "enabled"), "qvltrain trains in bf16 on GPU and fp32 on CPU; amp is not supported"
        )
    if fill.get(("fp16", "enabled")) == AUTO:
        fill.config["fp16"]["enabled"] = False
    if fill.get(("amp", "enabled")) == AUTO:
        fill.config["amp"]["enabled"] = False
    bf16 = fill.get(("bf16", "enabled"))
    if bf16 is None or bf16 == AUTO:
        fill.config.setdefault("bf16", {})["enabled"] = on_gpu


def _fill_zero(fill: _Filler, hidden_size: int | None) -> None:
    """The HF Trainer's fill of the ZeRO sizes that depend on the model width."""
    if hidden_size is None:
        return  # any "auto" left is reported with the others
    sizes = {
        "reduce_bucket_size": hidden_size * hidden_size,
        "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
        "stage3_param_persistence_threshold": 10 * hidden_size,
    }
    for key, ours in sizes.items():
        if fill.get(("zero_optimization", key)) == AUTO:
            fill.config["zero_optimization"][key] = ours


def _check_optimizer(fill: _Filler, values: RunValues) -> None:
    section = fill.config.get("optimizer")
    if section is None:
        return
    kind = str(section.get("type", "")).lower()
    if kind not in ADAM_TYPES:
        fill.refuse(
            ("optimizer", "type"),
            "qvltrain steps AdamW with a learning rate per module group (stage.lr_*); remove the optimizer "
            "section or make it AdamW",
        )
    if fill.get(("optimizer", "params", "adam_w_mode")) is False:
        fill.refuse(
            ("optimizer", "params", "adam_w_mode"), "qvltrain's optimizer is AdamW (decoupled weight decay)"
        )
    params = ("optimizer", "params")
    rates = sorted(set(values.learning_rates.values()))
    lr = fill.get((*params, "lr"))
    if lr not in (None, AUTO) and (len(rates) != 1 or not _same(lr, rates[0])):
        named = ", ".join(
            f"stage.lr_{group}={rate!r}" for group, rate in sorted(values.learning_rates.items())
        )
        fill.refuse(
            (*params, "lr"),
            f'conflicts with the learning rates of the trainable groups ({named}); write "auto" or set stage.lr_*',
        )
    fill.value((*params, "betas"), list(values.adam_betas), "train.adam_betas", fill_missing=False)
    fill.value((*params, "eps"), values.adam_eps, "train.adam_eps", fill_missing=False)
    fill.value((*params, "weight_decay"), values.weight_decay, "train.weight_decay", fill_missing=False)
    del fill.config["optimizer"]  # checked: qvltrain's own AdamW with these values steps the run


def _check_scheduler(fill: _Filler, values: RunValues) -> None:
    section = fill.config.get("scheduler")
    if section is None:
        return
    if section.get("type") != "WarmupCosineLR":
        fill.refuse(
            ("scheduler", "type"),
            f"differs from {SCHEDULE_DESCRIPTION}; remove the scheduler section (or describe ours as WarmupCosineLR)",
        )
    params = ("scheduler", "params")
    if fill.get((*params, "warmup_type")) not in (None, AUTO, "linear"):
        fill.refuse((*params, "warmup_type"), f"qvltrain warms up linearly: {SCHEDULE_DESCRIPTION}")
    fill.value((*params, "total_num_steps"), values.max_steps, "train.max_steps", fill_missing=False)
    fill.value(
        (*params, "warmup_num_steps"), values.warmup_steps, "train.schedule.warmup_steps", fill_missing=False
    )
    fill.value(
        (*params, "cos_min_ratio"), values.min_lr_ratio, "train.schedule.min_lr_ratio", fill_missing=False
    )
    fill.value((*params, "warmup_min_ratio"), 0.0, "qvltrain's warmup (from 0)", fill_missing=False)
    del fill.config["scheduler"]  # checked: the trainer sets every group's rate from train.schedule


def _auto_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [path for key, child in node.items() for path in _auto_paths(child, f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if node == AUTO else []
