"""The TRM network: parameter parity with tiny-recursive-model, gradient flow, halting, layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trm_core.config import ModelConfig
from trm_core.train.nets.mixer import TokenMixing
from trm_core.train.model import TinyRecursiveModel, count_parameters


def reference_parameter_count(dim: int, depth: int, seq_len: int, vocab: int) -> int:
    """tiny-recursive-model 0.0.12's MLPMixer1D TRM, counted from its module structure:
    per block a Conv1d(seq_len -> 4*dim -> seq_len, k=1) token FF, a Linear(dim -> dim/2 -> dim) channel FF and
    two bias-free LayerNorms; a final LayerNorm; embedding, two init vectors, to_pred and the halt Linear."""
    h_tok, h_ch = 4 * dim, int(0.5 * dim)
    block = (seq_len * h_tok + h_tok + h_tok * seq_len + seq_len) + (dim * h_ch + h_ch + h_ch * dim + dim) + 2 * dim
    return depth * block + dim + vocab * dim + 2 * dim + dim * vocab + dim


@pytest.mark.parametrize("dim, depth, seq_len", [(1024, 4, 4096), (64, 2, 64), (256, 3, 128)])
def test_parameter_count_matches_reference(dim: int, depth: int, seq_len: int) -> None:
    with torch.device("meta"):
        model = TinyRecursiveModel(ModelConfig(dim=dim, depth=depth, seq_len=seq_len), 258)
    assert count_parameters(model) == reference_parameter_count(dim, depth, seq_len, 258)


def test_token_mixing_equals_kernel_one_conv1d() -> None:
    torch.manual_seed(0)
    seq, batch, dim, hidden = 8, 3, 5, 16
    mix = TokenMixing(seq, hidden)
    x = torch.randn(seq, batch, dim)
    conv1, conv2 = torch.nn.Conv1d(seq, hidden, 1), torch.nn.Conv1d(hidden, seq, 1)
    with torch.no_grad():
        conv1.weight.copy_(mix.w1.unsqueeze(-1)); conv1.bias.copy_(mix.b1.squeeze(-1))
        conv2.weight.copy_(mix.w2.unsqueeze(-1)); conv2.bias.copy_(mix.b2.squeeze(-1))
        expected = conv2(F.gelu(conv1(x.transpose(0, 1)))).transpose(0, 1)  # the reference's (batch, seq, dim)
        torch.testing.assert_close(mix(x), expected, rtol=1e-5, atol=1e-5)


def _model(blocks: int) -> TinyRecursiveModel:
    torch.manual_seed(0)
    return TinyRecursiveModel(ModelConfig(dim=16, depth=1, seq_len=8, latent_steps=2, refinement_blocks=blocks), 11)


def test_gradients_only_through_last_refinement_block() -> None:
    tokens = torch.randint(0, 11, (3, 8))
    for blocks, init_gets_grad in ((1, True), (3, False)):
        model = _model(blocks)
        y, z = model.initial_state(3, 8)
        out = model(tokens, y, z)
        out.logits.sum().backward()
        # with T > 1 the initial states only feed the no-grad blocks, so they get no gradient
        assert (model.y_init.grad is not None) is init_gets_grad
        assert model.net.blocks[0].token_mix.w1.grad is not None
        assert not out.y.requires_grad and not out.z.requires_grad


def test_shapes_and_halting_head() -> None:
    model = _model(2)
    y, z = model.initial_state(3, 8)
    out = model(torch.randint(0, 11, (3, 8)), y, z)
    assert out.y.shape == out.z.shape == (8, 3, 16)
    assert out.logits.shape == (8, 3, 11)
    assert out.halt_logit.shape == (3,)
