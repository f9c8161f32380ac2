"""User tasks as JSONL pairs: ``{"input": [...], "output": [...]}``, each ``seq_len`` tokens long."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO, Iterator

import torch

from trm_core.config import ConfigError, DataConfig
from trm_core.data.base import Batch, holdout_split


def _lines(fh: BinaryIO, path: Path) -> Iterator[str]:
    """Lines of the file, decoded one by one so a byte that is not UTF-8 is reported on its own line."""
    for lineno, raw in enumerate(fh, 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}:{lineno}: not UTF-8 text") from None


def read_pairs(path: Path, seq_len: int, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse and check every line; a bad line is an error naming the file and the line."""
    inputs: list[list[int]] = []
    outputs: list[list[int]] = []
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"data.pairs_file: cannot open {path}: {exc.strerror}") from None
    with fh:
        for lineno, line in enumerate(_lines(fh, path), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "input" not in row or "output" not in row:
                raise ConfigError(f"{where}: expected an object with \"input\" and \"output\" lists")
            for key in ("input", "output"):
                seq = row[key]
                if not isinstance(seq, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in seq):
                    raise ConfigError(f"{where}: \"{key}\" must be a list of integers")
                if len(seq) != seq_len:
                    raise ConfigError(f"{where}: \"{key}\" has {len(seq)} tokens, model.seq_len is {seq_len}")
                bad = next((t for t in seq if t < 0 or (vocab_size and t >= vocab_size)), None)
                if bad is not None:
                    raise ConfigError(f"{where}: token {bad} in \"{key}\" is outside 0..{vocab_size - 1} "
                                      f"(model.vocab_size = {vocab_size})")
            inputs.append(row["input"])
            outputs.append(row["output"])
    if not inputs:
        raise ConfigError(f"data.pairs_file: {path} holds no pairs")
    return torch.tensor(inputs, dtype=torch.long), torch.tensor(outputs, dtype=torch.long)


class PairsDataset:
    def __init__(self, cfg: DataConfig, seq_len: int, vocab_size: int) -> None:
        inputs, outputs = read_pairs(Path(cfg.pairs_file), seq_len, vocab_size)
        if cfg.eval_pairs_file:
            ev_in, ev_out = read_pairs(Path(cfg.eval_pairs_file), seq_len, vocab_size)
            self.train_in, self.train_out, self.eval_in, self.eval_out = inputs, outputs, ev_in, ev_out
        else:
            train_ids, eval_ids = holdout_split(len(inputs), cfg.eval_fraction)
            self.train_in, self.train_out = inputs[train_ids], outputs[train_ids]
            self.eval_in, self.eval_out = inputs[eval_ids], outputs[eval_ids]
        observed = int(max(t.max() for t in (self.train_in, self.train_out, self.eval_in, self.eval_out)
                           if t.numel())) + 1
        self.vocab_size = vocab_size or observed
        self.num_train, self.num_eval = len(self.train_in), len(self.eval_in)
        self.description = f"pairs: {cfg.pairs_file}; {self.num_train:,} train / {self.num_eval:,} eval samples"

    def train_batch(self, indices: torch.Tensor, seed: int) -> Batch:
        return Batch(self.train_in[indices], self.train_out[indices])

    def eval_batch(self, start: int, size: int) -> Batch:
        ids = torch.arange(start, start + size) % max(1, self.num_eval)
        return Batch(self.eval_in[ids], self.eval_out[ids])

    def split_size(self, split: str) -> int:
        return self.num_eval if split == "test" else self.num_train

    def examples(self, split: str, start: int, size: int) -> Batch:
        if split == "test":
            return self.eval_batch(start, size)
        return Batch(self.train_in[start:start + size], self.train_out[start:start + size])
