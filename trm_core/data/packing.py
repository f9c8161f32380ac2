"""The reference's sampler for puzzle sets (its ``puzzle_dataset.py``), as a pure function of the step.

An epoch visits every group (a puzzle and its augmentations) once, in a shuffled order; the epochs follow one
another as one stream. A batch is packed along that stream: each group gives one of its puzzles, drawn at
random, and that puzzle gives as many of its examples as the batch still has room for (all of them, or the
first ones of a random order: without replacement), so the examples of one puzzle sit together. A batch ends
when it is full; the rest of the puzzle that filled it is not used, and the next batch starts at the next
group. Only the stream's last, partial batch is dropped (the reference drops one per eval interval: with
``interval_epochs`` the stream restarts every that many epochs, as its loader does). A run is
``epochs * groups * mean examples per puzzle / batch`` steps, the reference's ``total_steps``. A set smaller
than a batch trains as the reference trains it: a batch spans several passes (100 groups at batch 768 hold
6 to 9 draws of each group); only what cannot fill one batch is refused (an eval interval, where the
reference's loader would silently train nothing, or a whole run).

Everything is drawn from (seed, epoch) and (seed, the batch's first position): where batch k starts is found by
walking the stream once, lazily, and kept (one integer a batch), so a resume at any step replays the same
batches, and every rank computes the same global batch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from trm_core.config import ConfigError
from trm_core.data.base import Batch, mix_seed
from trm_core.prep.dataset_shape import epochs_problem, interval_problem

Take = Callable[[np.ndarray, np.ndarray], Batch]  # (global example rows, their global puzzles) -> the batch


class PackedOrder:
    def __init__(self, group_puzzles: np.ndarray, puzzle_examples: np.ndarray, batch_size: int, seed: int,
                 take: Take, interval_epochs: int = 0) -> None:
        """``group_puzzles``: each group's first puzzle, and the end (G + 1 numbers); ``puzzle_examples``:
        each puzzle's first example row, and the end (P + 1)."""
        self.group_puzzles, self.puzzle_examples = np.asarray(group_puzzles), np.asarray(puzzle_examples)
        self.groups = len(self.group_puzzles) - 1
        puzzles, examples = len(self.puzzle_examples) - 1, int(self.puzzle_examples[-1])
        self.batch_size, self.seed, self.take, self.interval = batch_size, seed, take, interval_epochs
        self.mean_examples = examples / max(1, puzzles)
        self.examples_per_epoch = self.groups * self.mean_examples
        problem = interval_problem(self.examples_per_epoch, batch_size, interval_epochs)
        if problem is not None:
            raise ConfigError(problem)
        # batches in one pass; 0 when a batch spans several passes (a small set: the stream of passes fills it)
        self.steps_per_epoch = int(self.examples_per_epoch / batch_size)
        self._starts: list[int] = []  # stream position where batch k starts, for every k walked so far
        self._next = 0  # where the batch after the last of them would start
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._counted: dict[int, int] = {}  # total_steps by epochs: a walk of the stream is done once
        self.one_example_puzzles = bool(np.all(np.diff(self.puzzle_examples) == 1))

    def total_steps(self, epochs: int) -> int:
        """The steps a run of ``epochs`` passes trains, as the reference's loop counts them: the batches its
        loader yields over those passes (``pretrain.py`` lines 564-607: epochs / eval_interval iterations, each
        dropping its partial last batch, ``puzzle_dataset.py`` lines 225-227), at most its ``total_steps``
        (line 219: epochs x groups x mean examples / batch; lines 289-292 skip any batch past it). The drops
        make the first figure the smaller one: 65,100 against 65,104 for Sudoku at 1,000 groups."""
        problem = epochs_problem(self.examples_per_epoch, self.batch_size, epochs)
        if problem is not None:
            raise ConfigError(problem)
        formula = self.schedule_steps(epochs)
        if epochs not in self._counted:
            self._counted[epochs] = min(formula, self._batches_within(epochs))
        return self._counted[epochs]

    def schedule_steps(self, epochs: int) -> int:
        """The steps the reference's learning-rate schedule runs over: its ``total_steps`` (``pretrain.py`` line
        219, ``int(epochs * total_groups * mean_puzzle_examples / global_batch_size)``), handed to its cosine as
        ``num_training_steps`` (lines 265-271) whatever its loop trains. One or a few steps above
        ``total_steps(epochs)`` where the loader's drops end the loop first."""
        return int(epochs * self.examples_per_epoch / self.batch_size)

    def _batches_within(self, epochs: int) -> int:
        """The full batches the stream yields before the end of pass ``epochs``: counted in closed form when
        every puzzle has one example (Sudoku, Maze: a batch is ``batch_size`` places of the stream), else by
        walking the stream (ARC: the rest of the puzzle that fills a batch is not used)."""
        span = self.interval or epochs
        if self.one_example_puzzles:
            full, rest = divmod(epochs, span)
            return full * (span * self.groups // self.batch_size) + rest * self.groups // self.batch_size
        limit, k = epochs * self.groups, 0
        while True:
            start = self._start(k)
            if start >= limit:
                return k
            if not self.interval:  # one stream of every pass: its last, partial batch is dropped
                end = self._end(start)
                if end is None or end > limit:
                    return k
            k += 1

    def epoch_of(self, step: int) -> int:
        """The 0-based epoch in which the batch of 0-based ``step`` starts."""
        return self._start(step) // self.groups

    def batch(self, step: int) -> Batch:
        start = self._start(step)
        end = self._end(start)
        assert end is not None  # _start never hands out a batch that does not fill
        rows, puzzles = self._rows(start, end)
        return self.take(rows, puzzles)

    # -- the stream -----------------------------------------------------------------------------------

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Epoch ``epoch``'s group order, each group's drawn puzzle, and the running sum of those puzzles'
        example counts. The last few are kept: a batch spans at most a few epochs."""
        got = self._epochs.get(epoch)
        if got is None:
            order = np.random.default_rng(mix_seed(self.seed, epoch, 1)).permutation(self.groups)
            lo, hi = self.group_puzzles[order], self.group_puzzles[order + 1]
            draw = np.random.default_rng(mix_seed(self.seed, epoch, 3)).random(self.groups)
            puzzles = lo + (draw * (hi - lo)).astype(np.int64)
            sizes = self.puzzle_examples[puzzles + 1] - self.puzzle_examples[puzzles]
            got = order, puzzles, np.cumsum(sizes)
            if len(self._epochs) >= 4:
                self._epochs.pop(min(self._epochs))
            self._epochs[epoch] = got
        return got

    def _end(self, start: int) -> int | None:
        """Where the batch that starts at stream position ``start`` ends (exclusive): the position after the
        group that fills it. None when the stream (or its interval) ends first: a partial batch, dropped."""
        need, pos, first_epoch = self.batch_size, start, start // self.groups
        while True:
            epoch, j = divmod(pos, self.groups)
            if epoch != first_epoch and self.interval and epoch % self.interval == 0:
                return None
            running = self._epoch(epoch)[2]
            before = int(running[j - 1]) if j else 0
            if int(running[-1]) - before >= need:
                return epoch * self.groups + int(np.searchsorted(running, before + need, side="left")) + 1
            need -= int(running[-1]) - before
            pos = (epoch + 1) * self.groups

    def _start(self, step: int) -> int:
        while len(self._starts) <= step:
            end = self._end(self._next)
            if end is None:  # the interval ends inside this batch: drop it, start the next interval
                self._next = (self._next // self.groups // self.interval + 1) * self.interval * self.groups
                continue
            self._starts.append(self._next)
            self._next = end
        return self._starts[step]

    def _rows(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """The example rows of the batch over stream positions [start, end), and each row's puzzle: every
        example of each position's puzzle in a random order, the last puzzle cut where the batch is full."""
        puzzles = np.concatenate([self._epoch(e)[1][max(start, e * self.groups) - e * self.groups:
                                                    min(end, (e + 1) * self.groups) - e * self.groups]
                                  for e in range(start // self.groups, (end - 1) // self.groups + 1)])
        first, sizes = self.puzzle_examples[puzzles], self.puzzle_examples[puzzles + 1] - self.puzzle_examples[puzzles]
        owner = np.repeat(np.arange(len(puzzles)), sizes)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        # a random order of each puzzle's examples: sort by (puzzle, random key), keep the puzzle's position
        keys = np.random.default_rng(mix_seed(self.seed, start, 4)).random(len(owner))
        order = np.lexsort((keys, owner))
        rows = first[owner] + offset[order]
        return rows[:self.batch_size], np.repeat(puzzles, sizes)[:self.batch_size]
