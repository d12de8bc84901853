"""One rank of the ZeRO-3 hang test (tests/model/test_packed_zero3.py): `python -m tests.model.zero3_packed_run DIR`.

Rank 0 trains on text-only packs, rank 1 on packs with video. Every parameter is partitioned
(persistence threshold 0), so a rank skipping the vision tower would leave the other waiting in a
parameter gather forever.
"""

from __future__ import annotations

import os
import sys

import torch

from qvltrain.train.distributed import use_cpu_accelerator


def main(shards_dir: str) -> None:
    use_cpu_accelerator()
    import deepspeed
    from transformers.integrations import HfDeepSpeedConfig

    from qvltrain.data.config import DataConfig
    from qvltrain.data.loader import TrainBatches
    from qvltrain.model.config import ModelConfig
    from qvltrain.model.qwen2_vl.build import build_model
    from qvltrain.model.qwen2_vl.train_module import Qwen2VLTrainModule
    from qvltrain.text.tokenizer import load_tokenizer
    from qvltrain.train.distributed import release_shm_buffer
    from tests.data.mixed_shards import dataset

    deepspeed.init_distributed(dist_backend="gloo", verbose=False)
    rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    release_shm_buffer(rank)  # /dev/shm is RAM: nothing of this run stays behind
    ds_config = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "train_batch_size": world_size,
        "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }
    tokenizer = load_tokenizer(None)
    keep_alive = HfDeepSpeedConfig(ds_config)  # noqa: F841  (transformers enters zero.Init while it lives)
    torch.manual_seed(0)
    model = build_model(ModelConfig(), tokenizer, zero3=True)
    module = Qwen2VLTrainModule(model, loss_chunk_tokens=32)  # ranks train different counts
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, foreach=False)
    engine, *_ = deepspeed.initialize(model=module, optimizer=optimizer, config=ds_config)
    kind = ("text", "video")[rank]
    data = DataConfig(
        train=[dataset(kind, f"{shards_dir}/{kind}")], seq_len=128, max_patches=512, pack_window=4
    )
    batches = TrainBatches(data, "plain", tokenizer, rank=0, world_size=1)  # each rank its own dataset
    for _ in range(3):
        batch = next(batches)
        assert (batch.grid_thw is None) == (kind == "text"), kind
        loss_sum, num_tokens, _ = engine(batch)
        engine.backward(loss_sum / num_tokens.clamp(min=1))
        engine.step()
    torch.distributed.barrier()
    print(f"rank {rank} ({kind}) done, loss {float(loss_sum / num_tokens):.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
    os._exit(0)  # skip slow interpreter teardown of the process group
