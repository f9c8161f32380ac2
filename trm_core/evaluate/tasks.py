"""Which task a run's examples belong to, for drawing them: the browser, ``trm-tui solve`` and the
predictions' index all name it the same way."""

from __future__ import annotations

from trm_core.config import Config
from trm_core.data import Dataset
from trm_core.evaluate.arc.vote import arc_set_dir


def task_of(cfg: Config, ds: Dataset) -> str:
    """sudoku, maze, arc, code or tokens: how an example is drawn."""
    if cfg.data.kind == "code":
        return "code"
    if cfg.data.kind != "puzzles":
        return "tokens"
    if arc_set_dir(cfg.data) is not None or (ds.vocab_size == 12 and cfg.model.seq_len == 900):
        return "arc"
    if ds.vocab_size == 11 and cfg.model.seq_len == 81:
        return "sudoku"
    if ds.vocab_size == 6:
        return "maze"
    return "tokens"
