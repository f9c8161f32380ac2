"""The reference's networks (``attention``, ``mlp_t``) and conventions: parameter counts against the reference's
configs by a closed form, the shapes and heads, stable-max cross-entropy by its definition, and the paper
presets building their models."""

from __future__ import annotations

import math

import pytest
import torch

from trm_core.config import resolve
from trm_core.config.schema import BUILTIN_PRESETS
from trm_core.data.base import IGNORE
from trm_core.train.losses import softmax_cross_entropy, stablemax_cross_entropy
from trm_core.train.model import ReferenceModel, TinyRecursiveModel, build_model, count_parameters


def swiglu(width: int, expansion: float) -> int:
    """The reference's SwiGLU (models/layers.py): hidden = round(expansion * width * 2/3) rounded up to a
    multiple of 256; gate_up is width x 2 hidden, down hidden x width, no biases."""
    hidden = math.ceil(round(expansion * width * 2 / 3) / 256) * 256
    return 3 * width * hidden


def reference_count(net: str, vocab: int, dim: int, depth: int, seq_len: int, prefix: int, expansion: float) -> int:
    """models/recursive_reasoning/trm.py: token embedding and LM head (vocab x dim each, no bias), a Q head of
    2 outputs with bias, and depth blocks of (attention: qkv 3 dim^2 + out dim^2 | mlp_t: a SwiGLU over the
    seq_len + prefix positions) + a SwiGLU over dim. The puzzle embeddings and the initial states are buffers."""
    mixing = 4 * dim * dim if net == "attention" else swiglu(seq_len + prefix, expansion)
    return 2 * vocab * dim + (2 * dim + 2) + depth * (mixing + swiglu(dim, expansion))


PAPER = {  # (preset, vocab, seq_len) as the reference's builders write them; the count that gives
    "sudoku-paper": (11, 81, 5_028_866),
    "sudoku-att-paper": (11, 81, 6_828_034),
    "maze-paper": (6, 900, 6_822_914),
    "arc-paper": (12, 900, 6_829_058),
    "arc2-paper": (12, 900, 6_829_058),
}


@pytest.mark.parametrize("preset", sorted(PAPER))
def test_paper_presets_build_the_reference_parameter_count(preset: str) -> None:
    vocab, seq_len, expected = PAPER[preset]
    cfg = resolve(env={}, preset=preset, sets=[f"model.seq_len={seq_len}"])
    m = cfg.model
    closed = reference_count(m.net, vocab, m.dim, m.depth, seq_len, m.puzzle_emb_len, m.expansion)
    assert closed == expected  # the figure in the test is the formula's (the paper's "7M" and "5M" networks)
    with torch.device("meta"):  # shapes only: a 7M-parameter model needs no memory to count
        model = build_model(m, vocab, num_puzzle_ids=10)
    assert isinstance(model, ReferenceModel) and count_parameters(model) == expected
    assert model.puzzle_emb.weights.shape == (10, m.dim)  # a buffer: not in the count, as the reference's


@pytest.mark.parametrize("net,extra", [("attention", ["model.num_heads=4"]), ("mlp_t", ["model.pos_encoding='none'"])])
@pytest.mark.parametrize("prefix", [0, 3])
def test_small_reference_networks_count_and_shape(net: str, extra: list[str], prefix: int) -> None:
    cfg = resolve(env={}, sets=[f"model.net='{net}'", "model.dim=32", "model.depth=2", "model.seq_len=10",
                                f"model.puzzle_emb_len={prefix}", "model.expansion=2.5", *extra])
    model = build_model(cfg.model, 7, num_puzzle_ids=4)
    assert count_parameters(model) == reference_count(net, 7, 32, 2, 10, prefix, 2.5)
    tokens = torch.randint(0, 7, (5, 10))
    y, z = model.initial_state(5, 10)
    assert y.shape == z.shape == (10 + prefix, 5, 32)
    out = model(tokens, y, z, torch.tensor([0, 1, 2, 3, 1]))
    assert out.logits.shape == (10, 5, 7) and out.halt_logit.shape == (5,)
    # the reference's halting head starts at a bias of -5 with zero weights: "not yet" for every sample
    assert torch.allclose(out.halt_logit, torch.full((5,), -5.0))


def test_the_mixer_keeps_its_parameters_and_state_names() -> None:
    cfg = resolve(env={}, preset="tiny")
    model = build_model(cfg.model, 258)
    assert isinstance(model, TinyRecursiveModel)
    assert list(model.state_dict())[:3] == ["y_init", "z_init", "input_embed.weight"]


def test_stablemax_cross_entropy_is_its_definition() -> None:
    logits = torch.tensor([[1.0, -1.0, 0.0], [2.0, -3.0, 0.5]])
    targets = torch.tensor([0, 2])
    # s(x) = x + 1 for x >= 0, 1 / (1 - x) below: row 0 s = (2, 0.5, 1), row 1 s = (3, 0.25, 1.5)
    expected = torch.tensor([-math.log(2 / 3.5), -math.log(1.5 / 4.75)], dtype=torch.float64)
    assert torch.allclose(stablemax_cross_entropy(logits, targets), expected)
    ignored = stablemax_cross_entropy(logits, torch.tensor([0, IGNORE]))
    assert ignored[1] == 0 and ignored[0] == expected[0]
    assert torch.allclose(softmax_cross_entropy(logits, targets).double(),
                          -torch.log_softmax(logits.double(), -1)[[0, 1], [0, 2]])


def test_every_builtin_preset_resolves_and_builds() -> None:
    for name in BUILTIN_PRESETS:
        cfg = resolve(env={}, preset=name)
        with torch.device("meta"):
            build_model(cfg.model, 12, num_puzzle_ids=2)


def test_attention_settings_that_cannot_work_are_config_errors() -> None:
    from trm_core.config import ConfigError
    with pytest.raises(ConfigError, match="num_heads = 5 does not divide model.dim = 32"):
        resolve(env={}, sets=["model.net='attention'", "model.dim=32", "model.num_heads=5"])
    with pytest.raises(ConfigError, match="even head width"):
        resolve(env={}, sets=["model.net='attention'", "model.dim=24", "model.num_heads=8"])
