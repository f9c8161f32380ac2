"""Pick the dataset a config asks for."""

from __future__ import annotations

from trm_core.config import Config, ConfigError
from trm_core.data.base import Dataset
from trm_core.data.code import CodeDataset
from trm_core.data.pairs import PairsDataset


def build_dataset(cfg: Config) -> Dataset:
    if cfg.data.kind == "code":
        ds: Dataset = CodeDataset(cfg.data, cfg.model.seq_len)
    else:
        ds = PairsDataset(cfg.data, cfg.model.seq_len, cfg.model.vocab_size)
    if cfg.model.vocab_size and cfg.model.vocab_size < ds.vocab_size:
        raise ConfigError(f"model.vocab_size = {cfg.model.vocab_size} is smaller than the data needs "
                          f"({ds.vocab_size})")
    if ds.num_train < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size = {cfg.train.batch_size} is larger than the training split "
                          f"({ds.num_train} samples)")
    return ds
