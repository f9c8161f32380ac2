"""A puzzle dataset's shape (sequence length, vocabulary) taken into the config, and the checks a front end can
make in milliseconds before it launches anything. No torch: the command line imports this."""

from __future__ import annotations

import copy
from pathlib import Path

from trm_core.config import Config, ConfigError, ModelConfig
from trm_core.prep.puzzle_format import read_metadata


def take_puzzle_shape(cfg: Config) -> None:
    """A puzzle dataset fixes the sequence length and the vocabulary: take them from its dataset.json where the
    config leaves them at their defaults (model.seq_len 4096, model.vocab_size 0); a value that contradicts
    them is an error naming both."""
    if not cfg.data.dataset_dir:
        return  # PuzzleDataset says what is missing
    meta = read_metadata(Path(cfg.data.dataset_dir).expanduser(), "train")
    if cfg.model.seq_len == ModelConfig.seq_len:
        cfg.model.seq_len = meta.seq_len
    if cfg.model.vocab_size == 0:
        cfg.model.vocab_size = meta.vocab_size
    elif cfg.model.vocab_size != meta.vocab_size:
        raise ConfigError(f"model.vocab_size = {cfg.model.vocab_size} but {cfg.data.dataset_dir}/train/dataset.json "
                          f"says vocab_size = {meta.vocab_size}; leave model.vocab_size at 0 to take the dataset's")


def check_data(cfg: Config) -> None:
    """What can be checked in milliseconds, before a front end launches anything: a puzzle folder's
    dataset.json and its shape against the config (the worker checks the rest as it loads)."""
    if cfg.data.kind == "puzzles":
        if not cfg.data.dataset_dir:
            raise ConfigError("data.kind = 'puzzles' needs data.dataset_dir: a folder with train/ and test/ "
                              "(built by trm-tui data ... or by the reference's dataset builders)")
        take_puzzle_shape(copy.deepcopy(cfg))
