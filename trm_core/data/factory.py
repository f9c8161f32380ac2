"""Pick the dataset a config asks for."""

from __future__ import annotations


from trm_core.config import Config, ConfigError
from trm_core.data.base import Dataset
from trm_core.data.code import CodeDataset
from trm_core.data.pairs import PairsDataset
from trm_core.data.puzzles import PuzzleDataset
from trm_core.prep.dataset_shape import take_puzzle_shape


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
    # a puzzle batch packs several examples of each group: its sampler checks the examples (data.packing)
    if cfg.data.kind != "puzzles" and ds.num_train < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size = {cfg.train.batch_size} is larger than the training split "
                          f"({ds.num_train} samples)")
    return ds
