"""Pick the dataset a config asks for."""

from __future__ import annotations

from trm_core.config import Config, ConfigError, ModelConfig
from trm_core.data.base import Dataset
from trm_core.data.code import CodeDataset
from trm_core.data.pairs import PairsDataset
from trm_core.data.puzzles import PuzzleDataset


def take_puzzle_shape(cfg: Config) -> None:
    """A puzzle dataset fixes the sequence length and the vocabulary: take them from its dataset.json where the
    config leaves them at their defaults (model.seq_len 4096, model.vocab_size 0); a value that contradicts
    them is an error naming both."""
    from pathlib import Path

    from trm_core.prep.puzzle_format import read_metadata

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


def build_dataset(cfg: Config) -> Dataset:
    """The dataset a config asks for. For puzzles the config's shape is taken from the data first (the worker
    saves the config after this, so the run's config.toml holds the real values)."""
    if cfg.data.kind == "code":
        ds: Dataset = CodeDataset(cfg.data, cfg.model.seq_len)
    elif cfg.data.kind == "puzzles":
        take_puzzle_shape(cfg)
        ds = PuzzleDataset(cfg.data, cfg.model.seq_len)
    else:
        ds = PairsDataset(cfg.data, cfg.model.seq_len, cfg.model.vocab_size)
    if cfg.model.vocab_size and cfg.model.vocab_size < ds.vocab_size:
        raise ConfigError(f"model.vocab_size = {cfg.model.vocab_size} is smaller than the data needs "
                          f"({ds.vocab_size})")
    if ds.num_train < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size = {cfg.train.batch_size} is larger than the training split "
                          f"({ds.num_train} samples)")
    return ds
