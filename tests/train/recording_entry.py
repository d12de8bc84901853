"""launch/train.py recording what a resume test checks, in the folder QVLTRAIN_TEST_RECORD names.

Right after the Trainer is built (so after any resume), each rank writes:
  weights.pt            rank 0: every parameter of the model, gathered from the ZeRO-3 partitions
  moments_rank<R>.pt    this rank's Adam state: sums of squares of exp_avg and exp_avg_sq over its
                        partitions, the step counts, and each parameter group's name, peak lr and
                        weight decay
and for every micro-batch it trains on, a line {"step": S, "keys": [...]} in keys_rank<R>.jsonl.

    deepspeed --num_gpus 2 tests/train/recording_entry.py +stage=vit_pretrain ...
"""

from __future__ import annotations

import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)

from qvltrain.launch_args import strip_launcher_args  # noqa: E402

sys.argv = strip_launcher_args(sys.argv)

import hydra  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from qvltrain.config import register_configs, to_plain_dict, to_typed  # noqa: E402
from qvltrain.train.trainer import Trainer, run_stage  # noqa: E402

register_configs()
RECORD = os.environ["QVLTRAIN_TEST_RECORD"]


class RecordingTrainer(Trainer):
    def __init__(self, config, resolved_config):
        super().__init__(config, resolved_config)
        import deepspeed

        os.makedirs(RECORD, exist_ok=True)
        named = list(self.engine.module.model.named_parameters())
        with deepspeed.zero.GatheredParameters([parameter for _, parameter in named]):
            if self.rank == 0:
                weights = {name: parameter.detach().float().clone() for name, parameter in named}
                torch.save(weights, os.path.join(RECORD, "weights.pt"))
        optimizer = self.engine.optimizer
        states = list(getattr(optimizer, "optimizer", optimizer).state.values())
        summary = {
            "exp_avg": sum(float(state["exp_avg"].double().pow(2).sum()) for state in states),
            "exp_avg_sq": sum(float(state["exp_avg_sq"].double().pow(2).sum()) for state in states),
            "steps": [int(state["step"]) for state in states],
            "groups": [
                {"name": group["name"], "peak_lr": group["peak_lr"], "weight_decay": group["weight_decay"]}
                for group in optimizer.param_groups
            ],
        }
        torch.save(summary, os.path.join(RECORD, f"moments_rank{self.rank}.pt"))

    def micro_batch_loss(self, batch, step: int):
        with open(os.path.join(RECORD, f"keys_rank{self.rank}.jsonl"), "a") as keys_file:
            keys_file.write(json.dumps({"step": step, "keys": list(batch.keys)}) + "\n")
        return super().micro_batch_loss(batch, step)


@hydra.main(config_path=os.path.join(REPO_ROOT, "conf"), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_stage(to_typed(cfg), to_plain_dict(cfg), RecordingTrainer)


if __name__ == "__main__":
    main()
