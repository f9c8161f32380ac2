"""A puzzle dataset's shape (sequence length, vocabulary) taken into the config, and the checks a front end can
make in milliseconds before it launches anything (and the sampler's refusals, which doctor states in its
words). No torch: the command line imports this."""

from __future__ import annotations

import copy
import math
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


def interval_problem(examples_per_epoch: float, batch_size: int, interval_epochs: int) -> str | None:
    """Why an eval interval's passes cannot fill one batch (the sampler restarts at each interval; the
    reference's loader would drop its only, partial batch every time and silently train nothing); None if
    they can."""
    if not interval_epochs or interval_epochs * examples_per_epoch >= batch_size:
        return None
    return (f"train.eval_every_epochs = {interval_epochs} epochs of the training split hold "
            f"{interval_epochs * examples_per_epoch:,.0f} examples (one puzzle a group a pass), fewer than one "
            f"batch (train.batch_size = {batch_size}): the sampler restarts at each interval, so no batch would "
            f"ever fill. Raise train.eval_every_epochs to at least {math.ceil(batch_size / examples_per_epoch)} "
            f"or lower the batch")


def epochs_problem(examples_per_epoch: float, batch_size: int, epochs: int) -> str | None:
    """Why a run of ``epochs`` passes has no step (fewer examples in all than one batch); None if it has."""
    if int(epochs * examples_per_epoch / batch_size) >= 1:
        return None
    return (f"train.epochs = {epochs} passes over the training split hold {epochs * examples_per_epoch:,.0f} "
            f"examples, fewer than one batch (train.batch_size = {batch_size}): raise train.epochs to at least "
            f"{math.ceil(batch_size / examples_per_epoch)}, set train.max_steps, or lower the batch")
