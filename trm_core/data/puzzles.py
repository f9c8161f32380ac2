"""Puzzle datasets in the reference format (``data.kind = "puzzles"``): Sudoku, Maze, ARC as built by the
reference implementation's builders or by ``trm-tui data``.

A run samples as the reference does (``data.packing.PackedOrder``): every group once an epoch, in a shuffled
order, each giving one random puzzle and as many of its examples as the batch has room for, as a pure
function of the step, so a stop and resume replays the same batches exactly. ``train_batch`` (one example of
one puzzle of each group given) remains for callers that pick groups themselves.

Labels equal to the dataset's ``ignore_label_id`` become ``IGNORE``: no loss, no accuracy. The eval split is
the test split's examples in order, all of them when ``train.eval_batches = 0``. Every batch carries its rows'
puzzle identifiers. An ARC set's voting for pass@k is the eval's (``evaluate.arc.vote.voting_for``).
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import torch

from trm_core.config import ConfigError, DataConfig
from trm_core.data.base import IGNORE, Batch
from trm_core.data.packing import PackedOrder
from trm_core.prep.puzzle_format import PuzzleMetadata, load_split, read_metadata


class _Split:
    """One split's sets joined end to end: global group and example numbers over every set."""

    def __init__(self, dataset_dir: Path, split: str, meta: PuzzleMetadata, random_access: bool = False) -> None:
        self.meta = meta
        self.sets = list(load_split(dataset_dir, split, meta).values())
        if random_access:
            for data in self.sets:
                for name in ("inputs", "labels"):
                    _no_readahead(data[name])
        self.group_offsets = np.cumsum([0] + [len(s["group_indices"]) - 1 for s in self.sets])
        self.example_offsets = np.cumsum([0] + [len(s["inputs"]) for s in self.sets])
        self.num_groups = int(self.group_offsets[-1])
        self.num_examples = int(self.example_offsets[-1])
        puzzle_offsets = np.cumsum([0] + [len(s["puzzle_indices"]) - 1 for s in self.sets])
        self.puzzle_offsets = puzzle_offsets
        # the structure over every set, in global numbers: each group's first puzzle, each puzzle's first row
        self.group_puzzles = np.concatenate([np.asarray(s["group_indices"][:-1], dtype=np.int64) + puzzle_offsets[i]
                                             for i, s in enumerate(self.sets)] + [puzzle_offsets[-1:]])
        self.puzzle_examples = np.concatenate(
            [np.asarray(s["puzzle_indices"][:-1], dtype=np.int64) + self.example_offsets[i]
             for i, s in enumerate(self.sets)] + [self.example_offsets[-1:]])

    def rows(self, set_index: int, rows: np.ndarray, puzzles: np.ndarray | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs, labels and puzzle identifiers of the given rows (their puzzles looked up when not given)."""
        data = self.sets[set_index]
        order = np.argsort(rows, kind="stable")  # memory-mapped reads in file order, then put back
        inputs = np.empty((len(rows), self.meta.seq_len), dtype=np.int64)
        labels = np.empty_like(inputs)
        inputs[order] = data["inputs"][rows[order]]
        labels[order] = data["labels"][rows[order]]
        if self.meta.ignore_label_id is not None:
            labels[labels == self.meta.ignore_label_id] = IGNORE
        if puzzles is None:
            puzzles = np.searchsorted(data["puzzle_indices"], rows, side="right") - 1
        ids = np.asarray(data["puzzle_identifiers"][puzzles], dtype=np.int64)
        return torch.from_numpy(inputs), torch.from_numpy(labels), torch.from_numpy(ids)

    def sample_groups(self, groups: np.ndarray, rng: np.random.Generator) -> Batch:
        """One example of one puzzle of each group, drawn with ``rng``."""
        parts = []
        set_of = np.searchsorted(self.group_offsets, groups, side="right") - 1
        for set_index in range(len(self.sets)):
            picked = np.flatnonzero(set_of == set_index)
            if not len(picked):
                continue
            data = self.sets[set_index]
            local = groups[picked] - self.group_offsets[set_index]
            g_lo, g_hi = data["group_indices"][local], data["group_indices"][local + 1]
            puzzles = g_lo + (rng.random(len(local)) * (g_hi - g_lo)).astype(np.int64)
            p_lo, p_hi = data["puzzle_indices"][puzzles], data["puzzle_indices"][puzzles + 1]
            rows = p_lo + (rng.random(len(local)) * (p_hi - p_lo)).astype(np.int64)
            parts.append((picked, *self.rows(set_index, rows, puzzles)))
        out_in = torch.empty((len(groups), self.meta.seq_len), dtype=torch.long)
        out_lb = torch.empty_like(out_in)
        out_ids = torch.empty(len(groups), dtype=torch.long)
        for picked, x, y, ids in parts:
            at = torch.from_numpy(picked)
            out_in[at], out_lb[at], out_ids[at] = x, y, ids
        return Batch(out_in, out_lb, puzzle_ids=out_ids)

    def take(self, rows: np.ndarray, puzzles: np.ndarray) -> Batch:
        """The given global example rows, of the given global puzzles, in this order (the packed sampler's)."""
        set_of = np.searchsorted(self.example_offsets, rows, side="right") - 1
        out_in = torch.empty((len(rows), self.meta.seq_len), dtype=torch.long)
        out_lb = torch.empty_like(out_in)
        out_ids = torch.empty(len(rows), dtype=torch.long)
        for set_index in np.unique(set_of):
            picked = np.flatnonzero(set_of == set_index)
            x, y, ids = self.rows(int(set_index), rows[picked] - self.example_offsets[set_index],
                                  puzzles[picked] - self.puzzle_offsets[set_index])
            at = torch.from_numpy(picked)
            out_in[at], out_lb[at], out_ids[at] = x, y, ids
        return Batch(out_in, out_lb, puzzle_ids=out_ids)

    def examples(self, start: int, stop: int) -> Batch:
        """Examples ``start:stop`` in order, across sets."""
        parts = []
        for set_index in range(len(self.sets)):
            lo, hi = max(start, self.example_offsets[set_index]), min(stop, self.example_offsets[set_index + 1])
            if lo < hi:
                parts.append(self.rows(set_index, np.arange(lo, hi) - self.example_offsets[set_index]))
        xs, ys, ids = zip(*parts)
        return Batch(torch.cat(xs), torch.cat(ys), puzzle_ids=torch.cat(ids))


def _no_readahead(array: np.ndarray) -> None:
    """Training reads one row here and one there, so the kernel's readahead around each row is wasted reading:
    from a cold page cache, 64 random rows of a 900k-row Sudoku set took 70-83 ms with it, 5 ms without."""
    mapped = getattr(array, "_mmap", None)
    if mapped is not None and hasattr(mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)


class PuzzleDataset:
    def __init__(self, cfg: DataConfig, seq_len: int) -> None:
        if not cfg.dataset_dir:
            raise ConfigError("data.kind = 'puzzles' needs data.dataset_dir: a folder with train/ and test/ "
                              "(built by trm-tui data ... or by the reference's dataset builders)")
        root = Path(cfg.dataset_dir).expanduser()
        train_meta, test_meta = read_metadata(root, "train"), read_metadata(root, "test")
        for name in ("seq_len", "vocab_size", "pad_id"):
            if getattr(train_meta, name) != getattr(test_meta, name):
                raise ConfigError(f"{root}: train/ and test/ disagree on {name} ({getattr(train_meta, name)} vs "
                                  f"{getattr(test_meta, name)})")
        if seq_len != train_meta.seq_len:
            raise ConfigError(f"model.seq_len = {seq_len} but {root / 'train' / 'dataset.json'} says seq_len = "
                              f"{train_meta.seq_len}; leave model.seq_len at its default to take the dataset's")
        self.meta = train_meta
        self.train, self.test = _Split(root, "train", train_meta, random_access=True), _Split(root, "test", test_meta)
        self.vocab_size = train_meta.vocab_size
        self.num_puzzle_ids = max(train_meta.num_puzzle_identifiers, test_meta.num_puzzle_identifiers)
        self.num_train, self.num_eval = self.train.num_groups, self.test.num_examples
        self.description = (f"puzzles: {root}; {self.train.num_groups:,} train groups "
                            f"({self.train.num_examples:,} examples) / {self.num_eval:,} test examples, "
                            f"vocab {self.vocab_size}, seq_len {train_meta.seq_len}")

    def train_batch(self, indices: torch.Tensor, seed: int) -> Batch:
        return self.train.sample_groups(indices.numpy(), np.random.default_rng(seed))

    def packed_order(self, batch_size: int, seed: int, interval_epochs: int = 0) -> PackedOrder:
        """The reference's sampler over the training split (``data.packing``): what a run trains on."""
        return PackedOrder(self.train.group_puzzles, self.train.puzzle_examples, batch_size, seed, self.train.take,
                           interval_epochs)

    def eval_batch(self, start: int, size: int) -> Batch:
        start = start % max(1, self.num_eval)
        return self.test.examples(start, min(self.num_eval, start + size))

    def split_size(self, split: str) -> int:
        return (self.test if split == "test" else self.train).num_examples

    def examples(self, split: str, start: int, size: int) -> Batch:
        part = self.test if split == "test" else self.train
        return part.examples(start, min(part.num_examples, start + size))
