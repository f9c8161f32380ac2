"""Weights from elsewhere (the reference's checkpoints, a model folder, a hub repository) checked before they
cost anything or answer anything.

Shapes first, on the meta device: the model a yaml or a config.json describes is built without memory and its
shapes compared with the file's, so a config that lies about its size (``hidden_size: 1000000``) is refused
before a byte is allocated; once the shapes agree, the real model is exactly as large as the file. Then the
values: dense, on a real device, floating point and finite. A model trained to NaN answers nothing (``solve``
said "disagreed with 30 of 30 givens"), so it is refused naming the tensor, never imported quietly.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from trm_core.config import ConfigError, ModelConfig

SHOWN = 6  # problems named in one refusal; the rest are counted


def meta_shapes(model: ModelConfig, vocab_size: int, num_puzzle_ids: int) -> dict[str, tuple[int, ...]]:
    """Every weight's shape in the model ``model`` describes, built on the meta device (no memory, any size)."""
    from trm_core.train.model import build_model

    with torch.device("meta"):
        built = build_model(model, vocab_size, num_puzzle_ids)
    return {name: tuple(t.shape) for name, t in built.state_dict().items()}


def refuse(problems: list[str], where: str, what: str, shown: int = SHOWN) -> None:
    """A ``ConfigError`` naming the first ``shown`` problems and counting the rest; nothing when there are none."""
    if problems:
        named = "; ".join(problems[:shown]) + (f"; and {len(problems) - shown} more" if len(problems) > shown else "")
        raise ConfigError(f"{where}: {what}: {named}")


def shape_problems(found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Names missing, unknown or of another shape, each said once."""
    problems = [f"{name}: shape {found[name]}, the config's model wants {expected[name]}"
                for name in found if name in expected and tuple(found[name]) != tuple(expected[name])]
    problems += [f"{name}: not a weight of the config's model" for name in found if name not in expected]
    problems += [f"{name}: not in the file" for name in expected if name not in found]
    return problems


def value_problems(state: Mapping[str, Any]) -> list[str]:
    """What makes a tensor unusable as a weight: not a tensor, sparse, meta (a shape with no values), not
    floating point, or holding NaN or infinity."""
    problems = []
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            problems.append(f"{name}: a {type(t).__name__}, not a tensor")
        elif t.layout != torch.strided:
            problems.append(f"{name}: a {str(t.layout).removeprefix('torch.')} tensor; weights are dense")
        elif t.is_meta:
            problems.append(f"{name}: a meta tensor (a shape without values)")
        elif not t.is_floating_point():
            problems.append(f"{name}: {str(t.dtype).removeprefix('torch.')} values; weights are floating point")
        else:
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                problems.append(f"{name}: {bad} of {t.numel()} values are NaN or infinite")
    return problems


def check_values(state: Mapping[str, Any], where: str) -> None:
    refuse(value_problems(state), where, "weights that cannot be used (a model trained to NaN answers nothing)")
