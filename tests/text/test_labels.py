"""Labels: decoding the trained spans gives exactly the assistant replies (chatml) or the text (plain)."""

from __future__ import annotations

import pytest
import torch

from qvltrain.text.config import RenderConfig
from qvltrain.text.errors import SkipSample
from qvltrain.text.render import render_sample
from qvltrain.text.sample import IGNORE_INDEX
from qvltrain.text.tokenizer import TokenizerInfo, load_tokenizer

from .conversations import KINDS, ConversationGenerator, oracle_messages

GRID = (1, 4, 4)  # every visual item: 4 pads (labels never depend on the grid)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(None)


@pytest.fixture(scope="module")
def info(tokenizer):
    return TokenizerInfo.from_tokenizer(tokenizer)


def trained_spans(tokenizer, sample) -> list[str]:
    """Decoded runs of consecutive trained tokens."""
    spans, current = [], []
    for token_id, label in zip(sample.input_ids.tolist(), sample.labels.tolist(), strict=True):
        if label != IGNORE_INDEX:
            assert label == token_id, "labels are aligned with input_ids"
            current.append(token_id)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    return [tokenizer.decode(span) for span in spans]


def item_text(item: dict) -> str:
    return item["text"]


def test_chatml_trains_exactly_the_assistant_replies(tokenizer, info):
    generator = ConversationGenerator(seed=3, clean_boundaries=True)
    for kind in KINDS:
        for index in range(10):
            conversation = generator.generate(kind)
            grids = [GRID] * len(conversation.visual_kinds)
            sample = render_sample(
                conversation.messages, grids, conversation.image_sizes, info, RenderConfig(template="chatml")
            )
            expected = []
            for message in oracle_messages(conversation):
                if message["role"] == "assistant":
                    content = message["content"]
                    text = content if isinstance(content, str) else "".join(map(item_text, content))
                    expected.append(text + "<|im_end|>\n")
            assert trained_spans(tokenizer, sample) == expected, f"{kind} #{index}"


def test_chatml_trained_roles_are_configurable(tokenizer, info):
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "What digit?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "7"}]},
    ]
    config = RenderConfig(template="chatml", trained_roles=("user", "assistant"), default_system_prompt=None)
    sample = render_sample(messages, [], [], info, config)
    assert trained_spans(tokenizer, sample) == ["What digit?<|im_end|>\n", "7<|im_end|>\n"]
    assert tokenizer.decode(sample.input_ids).startswith("<|im_start|>user\n")  # no system turn injected


@pytest.mark.parametrize("train_first_text", [True, False])
def test_plain_trains_text_and_grounding_tokens_never_vision(tokenizer, info, train_first_text):
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Question: where is the digit?"}]},
        {"role": "assistant", "content": [
            {"type": "image"},
            {"type": "text", "text": "It is "},
            {"type": "ref", "text": "the digit"},
            {"type": "box", "bbox": [0, 0, 50, 100], "image": 0},
            {"type": "text", "text": " on the left."},
        ]},
    ]  # fmt: skip
    config = RenderConfig(template="plain", train_first_text=train_first_text)
    sample = render_sample(messages, [GRID], [(100, 100)], info, config)
    # The first token is never trained (nothing predicts it), so the prompt loses its first token.
    first_token = tokenizer.decode(sample.input_ids[:1])
    expected = ["Question: where is the digit?".removeprefix(first_token)] if train_first_text else []
    # Grounding delimiters are trained like the text they enclose (a pre-trained model learns to emit
    # boxes), and so is the closing <|endoftext|> (it learns where a document ends).
    expected += [
        "It is <|object_ref_start|>the digit<|object_ref_end|><|box_start|>(0,0),(500,999)<|box_end|>"
        " on the left.<|endoftext|>"
    ]
    assert trained_spans(tokenizer, sample) == expected
    assert sample.input_ids[-1].item() == info.special.endoftext
    visual = torch.isin(sample.input_ids, torch.tensor([info.special.vision_start, info.special.vision_end]))
    assert (sample.labels[(sample.mm_token_type_ids != 0) | visual] == IGNORE_INDEX).all()


def test_plain_document_without_trained_text_is_not_made_trainable_by_its_end(info):
    """The closing <|endoftext|> is trained only after trained text: a prompt-only document stays a skip."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "Only a prompt."}, {"type": "image"}]}]
    config = RenderConfig(template="plain", train_first_text=False)
    with pytest.raises(SkipSample, match="no_trained_tokens"):
        render_sample(messages, [GRID], [(100, 100)], info, config)


def test_plain_trains_the_text_of_generated_samples(tokenizer, info):
    generator = ConversationGenerator(seed=5, clean_boundaries=True)
    for kind in KINDS:
        for index in range(5):
            conversation = generator.generate(kind)
            grids = [GRID] * len(conversation.visual_kinds)
            sample = render_sample(
                conversation.messages, grids, conversation.image_sizes, info, RenderConfig(template="plain")
            )
            trained = sample.labels != IGNORE_INDEX
            # Token 0 is never trained (nothing predicts it); count it back when it is text.
            trained[0] = sample.input_ids[0].item() not in info.special.all_ids()
            assert trained[-1] and sample.input_ids[-1].item() == info.special.endoftext, f"{kind} #{index}"
            decoded = tokenizer.decode(sample.input_ids[trained][:-1])
            texts = []
            for message in oracle_messages(conversation):
                content = message["content"]
                for item in [{"type": "text", "text": content}] if isinstance(content, str) else content:
                    if item["type"] == "text":
                        texts.append(item["text"])
            # every word of the document, with its grounding delimiters, is trained
            assert decoded == "".join(texts), f"{kind} #{index}"


def test_prompt_answer_boundary_inside_one_token_is_trained(tokenizer, info):
    # "?" + " A" merge across items: the token holding answer characters must be trained.
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Which digit is it? "}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A seven."}]},
    ]
    sample = render_sample(messages, [], [], info, RenderConfig(template="plain", train_first_text=False))
    assert "".join(trained_spans(tokenizer, sample)).strip() == "A seven.<|endoftext|>"
