"""One rank of the Qwen2.5-VL ZeRO-3 hang test (tests/model/qwen2_5_vl/test_zero3.py):
`python -m tests.model.qwen2_5_vl.zero3_run DIR`.

Rank 0 trains on text-only packs, rank 1 on packs with video (MP4 and frame lists, fractional time
steps). Every parameter is partitioned (persistence threshold 0), so a rank skipping the vision
tower, or calling its blocks a different number of times, would leave the other in a gather forever.
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
    from qvltrain.model.family import get_family
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
    family = get_family("qwen2_5_vl")
    model_config = ModelConfig(family="qwen2_5_vl", loss_chunk_tokens=32)  # ranks train different counts
    keep_alive = HfDeepSpeedConfig(ds_config)  # noqa: F841  (transformers enters zero.Init while it lives)
    torch.manual_seed(0)
    model = family.build_model(model_config, tokenizer, zero3=True)
    module = family.train_module(model, model_config, frozen_vision_tower=False)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, foreach=False)
    engine, *_ = deepspeed.initialize(model=module, optimizer=optimizer, config=ds_config)
    kind = ("text", "video")[rank]
    data = DataConfig(
        train=[dataset(kind, f"{shards_dir}/{kind}")], seq_len=128, max_patches=512, pack_window=4
    )
    options = family.render_options(model.config, model_config.position_rule)
    assert options["tokens_per_second"] == 2 and options["box_format"] == "qwen2_5_vl", options
    batches = TrainBatches(data, "plain", tokenizer, rank=0, world_size=1, render_options=options)
    for _ in range(3):
        batch = next(batches)
        assert (batch.grid_thw is None) == (kind == "text"), kind
        if kind == "video":
            assert bool((batch.second_per_grid_ts > 0).all()), batch.second_per_grid_ts
        loss_sum, num_tokens, _ = engine(batch)
        engine.backward(loss_sum / num_tokens.clamp(min=1))
        engine.step()
    torch.distributed.barrier()
    print(f"rank {rank} ({kind}) done, loss {float(loss_sum / num_tokens):.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
    os._exit(0)  # skip slow interpreter teardown of the process group
