"""launch/train.py with a fault the test owns: QVLTRAIN_TEST_NONFINITE_AT="STEP,RANK" makes that rank's
loss NaN at that (1-based) step, through the Trainer's `micro_batch_loss` seam.

    deepspeed --num_gpus 2 tests/train/faulty_entry.py +stage=full_pretrain ...
"""

from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)

from qvltrain.launch_args import strip_launcher_args  # noqa: E402

sys.argv = strip_launcher_args(sys.argv)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from qvltrain.config import register_configs, to_plain_dict, to_typed  # noqa: E402
from qvltrain.train.trainer import Trainer, run_stage  # noqa: E402

register_configs()
NONFINITE_AT = tuple(int(v) for v in os.environ["QVLTRAIN_TEST_NONFINITE_AT"].split(","))


class NonfiniteLossTrainer(Trainer):
    def micro_batch_loss(self, batch, step: int):
        loss_sum = super().micro_batch_loss(batch, step)
        return loss_sum * float("nan") if (step, self.rank) == NONFINITE_AT else loss_sum


@hydra.main(config_path=os.path.join(REPO_ROOT, "conf"), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_stage(to_typed(cfg), to_plain_dict(cfg), NonfiniteLossTrainer)


if __name__ == "__main__":
    main()
