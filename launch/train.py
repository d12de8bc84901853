"""Entry point of every stage.

deepspeed launch/train.py +stage=vit_pretrain [hydra overrides]     # all local GPUs (or 2 CPU ranks
                                                                     # with --num_gpus 2 on a CPU box)
python launch/train.py +stage=instruct model=qwen2vl_2b ...        # one process
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qvltrain.launch_args import strip_launcher_args  # noqa: E402

sys.argv = strip_launcher_args(sys.argv)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from qvltrain.config import register_configs, to_plain_dict, to_typed  # noqa: E402

register_configs()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        config = to_typed(cfg)
    except ValueError as error:
        raise SystemExit(f"config error: {error}") from None

    from qvltrain.train.trainer import run_stage

    run_stage(config, to_plain_dict(cfg))


if __name__ == "__main__":
    main()
