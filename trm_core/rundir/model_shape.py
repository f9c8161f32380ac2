"""A ``--model`` run made without a dataset keeps its model folder's config.json as ``model.json``: the shape of
its inputs (vocabulary, puzzle identifiers), which is all ``solve`` needs. A run-dir file: ``evaluate`` reads it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from trm_core.rundir.layout import RunDir

MODEL_CONFIG = "model.json"


@dataclass(frozen=True)
class ModelShape:
    """A model's inputs when no dataset is at hand (``solve`` needs no more): what the model folder says."""

    vocab_size: int
    num_puzzle_ids: int
    description: str
    num_train: int = 0
    num_eval: int = 0


def shape_of(run: RunDir) -> ModelShape | None:
    """The shape a ``--model`` run without a dataset keeps; None for any other run."""
    path = run.root / MODEL_CONFIG
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    return ModelShape(int(config["vocab_size"]), int(config["num_puzzle_ids"]),
                      f"the model's own shape ({config.get('task', 'puzzles')}; no dataset)")
