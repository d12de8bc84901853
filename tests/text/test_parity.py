"""Our rendered ids, modality types and positions equal transformers' processor + get_rope_index.

140 seeded conversations (text-only, single image, multi-image, video, mixed, multi-turn, grounding),
with and without vision ids, against the bundled tiny tokenizer; the same with the release's full
vocabulary (a local Qwen2-VL release tokenizer, or one built from the public Qwen BPE ranks).
"""

from __future__ import annotations

import torch

from qvltrain.text.config import RenderConfig
from qvltrain.text.render import render_sample
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer

from ..model.test_rope import RopeIndexOracle, paper_rule_positions
from .conversations import KINDS, ConversationGenerator, oracle_messages, oracle_plain_text
from .oracle import build_oracle, oracle_encode, visual_grids_in_order

NUM_PER_KIND = 20


def check_chatml_parity(tokenizer, seed: int, num_per_kind: int) -> int:
    processor = build_oracle(tokenizer)
    info = TokenizerInfo.from_tokenizer(tokenizer)
    rope_oracle = RopeIndexOracle()
    generator = ConversationGenerator(seed)
    num_checked = 0
    for kind in KINDS:
        for index in range(num_per_kind):
            conversation = generator.generate(kind)
            add_vision_ids = index % 3 == 0
            text = processor.apply_chat_template(
                oracle_messages(conversation), tokenize=False, add_vision_id=add_vision_ids
            )
            expected = oracle_encode(processor, text, conversation)
            grids = visual_grids_in_order(conversation, expected["image_grids"], expected["video_grids"])
            config = RenderConfig(
                template="chatml", add_vision_ids=add_vision_ids, position_rule="transformers"
            )
            sample = render_sample(conversation.messages, grids, conversation.image_sizes, info, config)
            paper = render_sample(
                conversation.messages,
                grids,
                conversation.image_sizes,
                info,
                RenderConfig(template="chatml", add_vision_ids=add_vision_ids),
            )

            context = f"{kind} #{index}: {text!r}"
            assert sample.input_ids.tolist() == expected["input_ids"], context
            assert sample.mm_token_type_ids.tolist() == expected["mm_token_type_ids"], context
            as_grid = lambda grids: torch.tensor(grids).reshape(-1, 3) if grids else None  # noqa: E731
            oracle_positions, _ = rope_oracle.get_rope_index(
                sample.input_ids[None],
                torch.tensor(expected["mm_token_type_ids"])[None],
                as_grid(expected["image_grids"]),
                as_grid(expected["video_grids"]),
            )
            assert torch.equal(sample.position_ids[1:], oracle_positions[:, 0]), context
            assert sample.position_ids[0].tolist() == list(range(len(sample))), context
            # The default (paper) rule changes positions only, never ids, types or labels.
            assert torch.equal(paper.input_ids, sample.input_ids), context
            assert torch.equal(paper.labels, sample.labels), context
            assert paper.position_ids[1:].tolist() == paper_rule_positions(
                sample.mm_token_type_ids, expected["image_grids"], expected["video_grids"]
            ), context
            num_checked += 1
    return num_checked


def test_chatml_parity_with_processor_and_get_rope_index():
    assert check_chatml_parity(load_tokenizer(None), seed=7, num_per_kind=NUM_PER_KIND) == 140


def test_plain_parity_with_processor():
    tokenizer = load_tokenizer(None)
    processor = build_oracle(tokenizer)
    info = TokenizerInfo.from_tokenizer(tokenizer)
    generator = ConversationGenerator(seed=11)
    for kind in KINDS:
        for index in range(5):
            conversation = generator.generate(kind)
            expected = oracle_encode(processor, oracle_plain_text(conversation), conversation)
            grids = visual_grids_in_order(conversation, expected["image_grids"], expected["video_grids"])
            sample = render_sample(
                conversation.messages, grids, conversation.image_sizes, info, RenderConfig(template="plain")
            )
            assert sample.input_ids.tolist() == expected["input_ids"], f"{kind} #{index}"
            assert sample.mm_token_type_ids.tolist() == expected["mm_token_type_ids"], f"{kind} #{index}"


def test_chatml_parity_with_the_release_vocabulary(qwen2_vl_tokenizer_dir):
    """The 151,657-token Qwen2-VL vocabulary: ids, types and positions against transformers."""
    tokenizer = load_tokenizer(qwen2_vl_tokenizer_dir)
    assert len(tokenizer) == 151657 and tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    assert check_chatml_parity(tokenizer, seed=13, num_per_kind=5) == 35
