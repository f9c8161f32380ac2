"""What one eval batch did, step by step: the answer after each supervision step (the first in full, then
only the cells that changed), the halting probability after each, and whether the whole answer was right.

``StepTrace`` is the eval's ``Trace``: it keeps each step's answers on the device, compares them with the
step before, and at the batch's end hands a ``BatchRecord`` of NumPy arrays to whoever writes or counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from trm_core.data.base import Batch
from trm_core.train.halting import halts


@dataclass
class BatchRecord:
    """One batch's examples: B rows, S supervision steps at most, L tokens."""

    inputs: np.ndarray       # (B, L) int64
    labels: np.ndarray       # (B, L) int64, IGNORE where unsupervised
    hidden: np.ndarray | None  # (B, L) bool: the positions hidden from the input (the code task)
    puzzle_ids: np.ndarray   # (B,) int64, 0 where the dataset has none
    first: np.ndarray        # (B, L) the answer after the first supervision step
    final: np.ndarray        # (B, L) the answer at exit
    changes: np.ndarray      # (C, 4) int64 rows of (row, step index, position, token), step index >= 1
    halt_prob: np.ndarray    # (B, S) float32, NaN after a row's exit
    exact: np.ndarray        # (B, S) bool: the whole answer right after that step (false after exit)
    accuracy: np.ndarray     # (B,) float32 token accuracy at exit
    exit_step: np.ndarray    # (B,) int16, 1-based: the step the row was scored at
    halt_step: np.ndarray    # (B,) int16, 1-based: the first step whose halting logit reached the threshold
    #                          (the step training would have stopped it at), max steps when none did
    halt_fired: np.ndarray | None = None  # (B,) bool: whether the halting logit passed the threshold at any step
    # with K trajectories an example (the rows above are the kept one's): every trajectory's answer at exit
    # (B, K, L), its halting probability there (B, K), its exit step (B, K), and which was kept (B,)
    trajectory_final: np.ndarray | None = None
    trajectory_prob: np.ndarray | None = None
    trajectory_exit: np.ndarray | None = None
    chosen: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def voters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What ARC's vote counts from this batch: (puzzle ids, inputs, answers, confidence), one row per
        answer, so with K trajectories each trajectory of each disguise votes."""
        if self.trajectory_final is None or self.trajectory_prob is None:
            return self.puzzle_ids, self.inputs, self.final, self.exit_confidence()
        k = self.trajectory_final.shape[1]
        return (np.repeat(self.puzzle_ids, k, 0), np.repeat(self.inputs, k, 0),
                self.trajectory_final.reshape(len(self) * k, -1), self.trajectory_prob.reshape(-1))

    def exit_confidence(self) -> np.ndarray:
        """(B,) each row's halting probability at the step it was scored at: what its ARC vote weighs."""
        return self.halt_prob[np.arange(len(self)), self.exit_step.astype(np.int64) - 1]

    def take(self, count: int) -> "BatchRecord":
        """The first ``count`` rows (a limit that ends inside a batch)."""
        keep = self.changes[:, 0] < count
        return BatchRecord(*(None if a is None else a[:count] for a in (
            self.inputs, self.labels, self.hidden, self.puzzle_ids, self.first, self.final)),
            self.changes[keep], *(a[:count] for a in (self.halt_prob, self.exact, self.accuracy,
                                                      self.exit_step, self.halt_step)),
            *(None if a is None else a[:count] for a in (self.halt_fired, self.trajectory_final,
                                                          self.trajectory_prob, self.trajectory_exit, self.chosen)))


class StepTrace:
    """Records each batch it is handed through ``evaluate.batch_pass``; ``on_record`` hears each finished one."""

    def __init__(self, halt_logit_threshold: float, on_record: Callable[[BatchRecord], None]) -> None:
        self.threshold = halt_logit_threshold
        self.on_record = on_record

    def start(self, batch: Batch, max_sup: int) -> None:
        self.batch, self.max_sup = batch, max_sup
        n = len(batch.inputs)
        self._n = n
        self.first: torch.Tensor | None = None
        self.current: torch.Tensor | None = None  # every row's newest answer (device)
        self.changes: list[torch.Tensor] = []
        self.halt_prob = np.full((n, max_sup), np.nan, dtype=np.float32)
        self.exact = np.zeros((n, max_sup), dtype=bool)
        self.accuracy = np.zeros(n, dtype=np.float32)
        self.exit_step = np.zeros(n, dtype=np.int16)
        self.halt_step = np.full(n, max_sup, dtype=np.int16)
        self._halted = np.zeros(n, dtype=bool)
        self._trajectories: dict[str, np.ndarray] = {}

    def step(self, rows: torch.Tensor, sup: int, answers: torch.Tensor, halt_logit: torch.Tensor,
             exact: torch.Tensor, accuracy: torch.Tensor, exiting: torch.Tensor) -> None:
        if self.current is None:
            self.first = answers.clone()
            self.current = answers.clone()
        else:
            before = self.current[rows]
            row, pos = torch.nonzero(before != answers, as_tuple=True)
            if len(row):
                self.changes.append(torch.stack((rows[row], torch.full_like(row, sup), pos, answers[row, pos]), 1))
            self.current[rows] = answers
        at = rows.cpu().numpy()
        logits = halt_logit.float()
        self.halt_prob[at, sup] = torch.sigmoid(logits).cpu().numpy()
        self.exact[at, sup] = exact.cpu().numpy()
        reached = halts(logits, self.threshold).cpu().numpy() & ~self._halted[at]
        self.halt_step[at[reached]] = sup + 1
        self._halted[at[reached]] = True
        out = exiting.cpu().numpy()
        self.exit_step[at[out]] = sup + 1
        self.accuracy[at[out]] = accuracy.float().cpu().numpy()[out]

    def trajectories(self, final: torch.Tensor, confidence: torch.Tensor, exit_step: torch.Tensor,
                     chosen: torch.Tensor) -> None:
        self._trajectories = {"trajectory_final": final.cpu().numpy(),
                              "trajectory_prob": torch.sigmoid(confidence.float()).cpu().numpy(),
                              "trajectory_exit": exit_step.cpu().numpy().astype(np.int16),
                              "chosen": chosen.cpu().numpy().astype(np.int16)}

    def finish(self) -> None:
        b = self.batch
        assert self.first is not None and self.current is not None
        changes = torch.cat(self.changes).cpu().numpy() if self.changes else np.zeros((0, 4), dtype=np.int64)
        self.on_record(BatchRecord(
            inputs=b.inputs.numpy(), labels=b.targets.numpy(),
            hidden=None if b.hidden is None else b.hidden.numpy(),
            puzzle_ids=b.puzzle_ids.numpy() if b.puzzle_ids is not None else np.zeros(self._n, dtype=np.int64),
            first=self.first.cpu().numpy(), final=self.current.cpu().numpy(), changes=changes.astype(np.int64),
            halt_prob=self.halt_prob, exact=self.exact, accuracy=self.accuracy, exit_step=self.exit_step,
            halt_step=self.halt_step, halt_fired=self._halted.copy(), **self._trajectories))
