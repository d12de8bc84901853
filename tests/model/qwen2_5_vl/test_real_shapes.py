"""The 3B and 7B flavors at their real widths (heads, KV heads, head dim, mrope_section, the 1280-wide
SwiGLU tower with 16 heads and its merger to the LLM width), cut to 1-2 LLM layers and 2 vision
blocks (one window, one full) with random weights and the tiny vocabulary: packed == unpacked
against transformers' forward. The 72B flavor's numbers are checked on the transformers config only
(one layer is ~1B parameters)."""

from __future__ import annotations

import copy

import pytest
import torch

from qvltrain.data.batch import pack_samples
from qvltrain.model.common.checkpoint_guards import special_token_ids
from qvltrain.model.family import get_family
from qvltrain.model.qwen2_5_vl.config import FLAVORS, build_hf_config
from qvltrain.model.qwen2_5_vl.train_module import Qwen2_5_VLTrainModule
from qvltrain.text.tokenizer import load_tokenizer
from tests.data.mixed_shards import KINDS
from tests.model.qwen2_5_vl.fixtures import decoded_samples, reference_logits
from tests.test_config import compose_config

# (hidden, intermediate, heads, KV heads, mrope_section, tied embeddings, release vocabulary)
RELEASE_SHAPES = {
    "qwen2_5_vl_3b": (2048, 11008, 16, 2, [16, 24, 24], True, 151936),
    "qwen2_5_vl_7b": (3584, 18944, 28, 4, [16, 24, 24], False, 152064),
    "qwen2_5_vl_72b": (8192, 29568, 64, 8, [16, 24, 24], False, 152064),
}


def typed_model_config(flavor: str, llm_layers: int):
    from qvltrain.config import to_typed

    overrides = [
        "+stage=full_pretrain",
        f"model=qwen2_5_vl_{flavor.rsplit('_', 1)[1]}",
        f"+model.arch.llm.num_layers={llm_layers}",
        "+model.arch.vision.depth=2",
        "+model.arch.vision.fullatt_block_indexes=[1]",
        "model.tokenizer=null",  # the bundled tiny tokenizer: a small embedding, real widths elsewhere
        "+model.arch.llm.vocab_size=null",
        "model.activation_checkpointing=none",
    ]
    return to_typed(compose_config(overrides)).model


@pytest.mark.parametrize("flavor", sorted(RELEASE_SHAPES))
def test_release_numbers(flavor: str) -> None:
    tokenizer = load_tokenizer(None)
    config = build_hf_config(FLAVORS[flavor], special_token_ids(tokenizer), len(tokenizer), "sdpa")
    text, vision = config.text_config, config.vision_config
    hidden, intermediate, heads, kv_heads, section, tied, vocab = RELEASE_SHAPES[flavor]
    assert (text.hidden_size, text.intermediate_size) == (hidden, intermediate)
    assert (text.num_attention_heads, text.num_key_value_heads) == (heads, kv_heads)
    assert text.rope_parameters["mrope_section"] == section and 2 * sum(section) == hidden // heads
    assert (config.tie_word_embeddings, text.vocab_size) == (tied, vocab)
    assert (vision.depth, vision.hidden_size, vision.intermediate_size, vision.num_heads) == (
        32,
        1280,
        3420,
        16,
    )
    assert (vision.window_size, vision.tokens_per_second) == (112, 2)
    assert list(vision.fullatt_block_indexes) == [7, 15, 23, 31]
    assert vision.out_hidden_size == hidden and vision.hidden_act == "silu"


@pytest.mark.parametrize("flavor", ["qwen2_5_vl_3b", "qwen2_5_vl_7b"])
def test_packed_logits_equal_unpacked_at_real_width(flavor: str) -> None:
    tokenizer = load_tokenizer(None)
    model_config = typed_model_config(flavor, llm_layers=2 if flavor.endswith("3b") else 1)
    torch.manual_seed(0)
    reference = get_family("qwen2_5_vl").build_model(model_config, tokenizer, zero3=False).eval()
    hidden, _, heads, kv_heads, *_ = RELEASE_SHAPES[flavor]
    layer = reference.model.language_model.layers[0].self_attn
    assert layer.k_proj.out_features == kv_heads * (hidden // heads)  # grouped-query attention
    assert reference.model.visual.merger.mlp[2].out_features == hidden

    module = Qwen2_5_VLTrainModule(copy.deepcopy(reference)).eval()
    samples = decoded_samples(tokenizer, "paper", kinds=KINDS, seed=11, big_image=(168, 252))
    assert any(max(p.grid_thw[1:]) > 8 for s in samples for p in s.patches)  # more than one window
    seq_len = sum(len(s.input_ids) for s in samples) + 5
    batch = pack_samples(samples, seq_len, tokenizer.pad_token_id)
    with torch.no_grad():
        packed = module.model.lm_head(module.hidden_states(batch))[0]
        start = 0
        for sample in samples:
            alone = reference_logits(reference, sample, given_positions=True)
            torch.testing.assert_close(
                packed[start : start + len(sample.input_ids)], alone, rtol=1e-4, atol=1e-4
            )
            start += len(sample.input_ids)
