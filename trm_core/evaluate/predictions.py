"""The predictions of one eval on disk: a folder of NumPy arrays, one row per example, memory-mapped when read.

A held-out split may hold 400,000 examples of 16 supervision steps each, so the answer after every step is not
kept whole: ``first`` is the answer after step 1, ``final`` the answer at exit, and the cells that changed at
each later step are kept as (step, position, token) rows (``change_*``), grouped by example through
``change_offsets``. The model's answers settle after a few steps, so that is a few bytes an example
(docs/log-format.md has the format).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.format import open_memmap

from trm_core.config import ConfigError

if TYPE_CHECKING:  # the browser reads predictions without importing torch
    from trm_core.evaluate.trace import BatchRecord

FORMAT = 1
METRICS = "metrics.json"  # an eval folder's files (evaluate.session writes them)
PREDICTIONS = "predictions"
ARC_VOTES = "arc_votes.json"
NO_TARGET = -100  # a label with no target (the datasets' IGNORE), as labels.npy holds it
INDEX = "index.json"
ROW_ARRAYS = ("inputs", "labels", "puzzle_ids", "first", "final", "halt_prob", "exact", "accuracy", "exit_step",
              "halt_step")
# present only where a row is the kept one of K trajectories (trm-tui eval --trajectories K, K > 1)
TRAJECTORY_ARRAYS = ("trajectory_final", "trajectory_prob", "trajectory_exit", "chosen")
OPTIONAL_ARRAYS = ("hidden", *TRAJECTORY_ARRAYS)


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint8 if vocab_size <= 256 else np.uint16)


class PredictionWriter:
    """Fills a predictions folder with ``count`` examples, record by record, in order; ``close`` writes the
    changes and the index last (a folder without ``index.json`` is not a predictions folder)."""

    def __init__(self, folder: Path, count: int, seq_len: int, max_steps: int, vocab_size: int,
                 has_hidden: bool, context: dict[str, Any], trajectories: int = 1) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.count, self.max_steps, self.context = folder, count, max_steps, context
        tok = token_dtype(vocab_size)
        shapes: dict[str, tuple[tuple[int, ...], Any]] = {
            "inputs": ((count, seq_len), tok), "labels": ((count, seq_len), np.int16),
            "puzzle_ids": ((count,), np.int32), "first": ((count, seq_len), tok), "final": ((count, seq_len), tok),
            "halt_prob": ((count, max_steps), np.float32), "exact": ((count, max_steps), np.bool_),
            "accuracy": ((count,), np.float32), "exit_step": ((count,), np.int16), "halt_step": ((count,), np.int16)}
        if has_hidden:
            shapes["hidden"] = ((count, seq_len), np.bool_)
        if trajectories > 1:
            k = trajectories
            shapes |= {"trajectory_final": ((count, k, seq_len), tok), "trajectory_prob": ((count, k), np.float32),
                       "trajectory_exit": ((count, k), np.int16), "chosen": ((count,), np.int16)}
        self.arrays = {name: open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
                       for name, (shape, dtype) in shapes.items()}
        self.filled = 0
        self._changes: list[np.ndarray] = []

    def add(self, record: "BatchRecord") -> None:
        lo, hi = self.filled, min(self.count, self.filled + len(record))
        if hi - lo < len(record):
            record = record.take(hi - lo)
        for name, array in self.arrays.items():
            array[lo:hi] = getattr(record, name)
        if len(record.changes):
            changes = record.changes.copy()
            changes[:, 0] += lo
            self._changes.append(changes)
        self.filled = hi

    def close(self) -> None:
        """Flush the rows, write the changes grouped by example (in step order) and the index."""
        for array in self.arrays.values():
            array.flush()
        changes = np.concatenate(self._changes) if self._changes else np.zeros((0, 4), dtype=np.int64)
        changes = changes[np.argsort(changes[:, 0], kind="stable")]  # by example; steps stay in order
        offsets = np.zeros(self.count + 1, dtype=np.int64)
        np.cumsum(np.bincount(changes[:, 0], minlength=self.count)[:self.count], out=offsets[1:])
        np.save(self.folder / "change_offsets.npy", offsets)
        np.save(self.folder / "change_step.npy", changes[:, 1].astype(np.uint16))  # steps run past 255 (MAX_SUPERVISION_STEPS)
        np.save(self.folder / "change_pos.npy", changes[:, 2].astype(np.uint16 if self.arrays["first"].shape[1] <= 65536
                                                                     else np.uint32))
        np.save(self.folder / "change_token.npy", changes[:, 3].astype(self.arrays["first"].dtype))
        index = {"format": FORMAT, "count": self.filled, "seq_len": int(self.arrays["first"].shape[1]),
                 "max_steps": self.max_steps, "changes": int(len(changes))} | self.context
        (self.folder / INDEX).write_text(json.dumps(index, indent=1))


@dataclass
class Predictions:
    """A predictions folder, memory-mapped: nothing is read until a row is asked for."""

    folder: Path
    index: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @classmethod
    def open(cls, folder: Path) -> "Predictions":
        path = folder / INDEX
        try:
            index = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{folder} holds no predictions ({INDEX} is missing); trm-tui eval writes them") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not readable JSON ({exc})") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a predictions index of format {FORMAT}")
        names = [*ROW_ARRAYS, "change_offsets", "change_step", "change_pos", "change_token"]
        names += [name for name in OPTIONAL_ARRAYS if (folder / f"{name}.npy").exists()]
        arrays = {}
        for name in names:
            try:
                arrays[name] = np.load(folder / f"{name}.npy", mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{folder / (name + '.npy')}: cannot be read ({exc})") from None
        count = int(index["count"])
        if any(len(arrays[n]) < count for n in ROW_ARRAYS) or len(arrays["change_offsets"]) != len(arrays["inputs"]) + 1:
            raise ConfigError(f"{folder}: its arrays are shorter than the {count} examples {INDEX} names (damaged?)")
        return cls(folder, index, arrays)

    def __len__(self) -> int:
        return int(self.index["count"])

    @property
    def max_steps(self) -> int:
        return int(self.index["max_steps"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name][:len(self)] if name in ROW_ARRAYS or name in OPTIONAL_ARRAYS else self.arrays[name]

    @property
    def trajectories(self) -> int:
        """How many trajectories each example ran (1 when the eval ran one)."""
        return int(self.arrays["trajectory_final"].shape[1]) if "trajectory_final" in self.arrays else 1

    def _changes(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = self.arrays["change_offsets"][row], self.arrays["change_offsets"][row + 1]
        return (self.arrays["change_step"][lo:hi], self.arrays["change_pos"][lo:hi],
                self.arrays["change_token"][lo:hi])

    def answer(self, row: int, step: int | None = None) -> np.ndarray:
        """The answer of example ``row`` after supervision step ``step`` (1-based), at exit when None."""
        if step is None:
            return np.asarray(self.arrays["final"][row])
        answer = np.array(self.arrays["first"][row])
        steps, pos, tok = self._changes(row)
        upto = steps < step  # step index s holds the changes made by step s + 1
        answer[pos[upto]] = tok[upto]
        return answer

    def changed(self, row: int, step: int) -> np.ndarray:
        """The positions whose token changed at supervision step ``step`` (none at step 1)."""
        steps, pos, _ = self._changes(row)
        return np.asarray(pos[steps == step - 1], dtype=np.int64)

    def steps_run(self, row: int) -> int:
        return int(self.arrays["exit_step"][row])


def newest_eval(evals: Path, with_predictions: bool = True) -> Path | None:
    """The eval under ``evals`` of the newest checkpoint (one with predictions, unless told otherwise): of its
    step's evals, one of the held-out split before the training split, a whole split before a ``--limit``,
    then the one written last (a quick ``--limit 20`` look at an older step is not "the newest eval")."""
    if not evals.is_dir():
        return None
    found = [p for p in evals.glob("step-*") if (p / METRICS).is_file()
             and (not with_predictions or (p / PREDICTIONS / INDEX).is_file())]
    return max(found, key=_eval_rank, default=None)


def _eval_rank(folder: Path) -> tuple[int, bool, bool, float]:
    """step-N-WEIGHTS-SPLIT[-firstK]: (N, held-out split, whole split, written)."""
    parts = folder.name.split("-")
    step = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
    return step, "test" in parts, not any(p.startswith("first") for p in parts), (folder / METRICS).stat().st_mtime
