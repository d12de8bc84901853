"""Chunked loss equals the plain full-logits loss (value, gradients, accuracy), CPU fp32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qvltrain.model.common.loss import chunked_token_loss, plain_token_loss


@pytest.mark.parametrize("chunk_tokens", [1, 7, 64, 10_000])
def test_chunked_equals_plain(chunk_tokens: int) -> None:
    torch.manual_seed(0)
    head = nn.Linear(32, 500, bias=False)
    hidden = torch.randn(2, 40, 32, requires_grad=True)
    labels = torch.randint(0, 500, (2, 40))
    labels[torch.rand(2, 40) < 0.4] = -100
    plain = plain_token_loss(head, hidden, labels)
    plain[0].backward()
    plain_grads = hidden.grad.clone(), head.weight.grad.clone()
    hidden.grad, head.weight.grad = None, None

    chunked = chunked_token_loss(head, hidden, labels, chunk_tokens)
    chunked[0].backward()
    torch.testing.assert_close(chunked[0], plain[0], rtol=1e-6, atol=1e-6)
    assert int(chunked[1]) == int(plain[1]) and int(chunked[2]) == int(plain[2])
    torch.testing.assert_close(hidden.grad, plain_grads[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(head.weight.grad, plain_grads[1], rtol=1e-6, atol=1e-6)


def test_head_calls_depend_only_on_length() -> None:
    """Under ZeRO-3 every rank must call the head as often as the others, whatever it trains on."""
    head = nn.Linear(8, 20, bias=False)
    calls = []
    head.register_forward_hook(lambda *args: calls.append(1))
    hidden = torch.randn(1, 33, 8)
    for num_trained in (0, 3, 32):
        calls.clear()
        labels = torch.full((1, 33), -100)
        labels[0, 1 : 1 + num_trained] = 1
        with torch.no_grad():
            chunked_token_loss(head, hidden, labels, chunk_tokens=8)
        assert len(calls) == 4, num_trained
