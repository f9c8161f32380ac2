"""The dataset: there, in the format, shaped as the config expects, giving the steps the run will take, and
built the way the chosen preset's recipe builds it (the reference's most reported wrong result: a set built
with other flags than the paper's, TRM #46)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from trm_core.config import Config, ConfigError
from trm_core.config.schema import data_command
from trm_core.prep.dataset_shape import epochs_problem, interval_problem
from trm_core.doctor.report import Check, fail, ok, warn

AREA = "dataset"


@dataclass(frozen=True)
class Recipe:
    """What a preset's dataset command builds: training groups (original puzzles) and puzzles per group
    (the original and its augmentations), within ``tolerance`` (ARC drops duplicate disguises)."""

    groups: int | None
    per_group: float
    tolerance: float = 0.02


SUDOKU_1K = Recipe(1000, 1001)
RECIPES: dict[str, Recipe] = {  # each preset's build (its command: config.schema.DATA_COMMANDS)
    "sudoku-paper": SUDOKU_1K,
    "sudoku-att-paper": SUDOKU_1K,
    "sudoku-cpu": Recipe(1000, 1001),
    "maze-paper": Recipe(1000, 8),
    "arc-paper": Recipe(None, 1001, tolerance=0.1),
    "arc2-paper": Recipe(None, 1001, tolerance=0.1),
}


def puzzle_checks(cfg: Config, preset: str | None, quick: bool = False) -> list[Check]:
    from trm_core.prep.dataset_shape import take_puzzle_shape
    from trm_core.prep.puzzle_format import read_metadata

    if not cfg.data.dataset_dir:
        return [fail(AREA, "present", "data.kind = 'puzzles' but data.dataset_dir is empty",
                     "build one with trm-tui data sudoku|maze|arc --out DIR and set data.dataset_dir = DIR")]
    root = Path(cfg.data.dataset_dir).expanduser()
    try:
        train, test = read_metadata(root, "train"), read_metadata(root, "test")
    except ConfigError as exc:
        command = data_command(preset, cfg.data.dataset_dir)
        how = f"build it with: {command}" if command else \
            f"build it with trm-tui data sudoku|maze|arc (each has --help) --out {cfg.data.dataset_dir}"
        return [fail(AREA, "present", str(exc), f"{how} (or point data.dataset_dir at the folder that holds train/ "
                     f"and test/)")]
    found = [ok(AREA, "present", f"{root}: train {train.total_groups:,} groups, {train.total_puzzles:,} puzzles; "
                                 f"test {test.total_puzzles:,} puzzles (the reference's format)")]
    shaped = copy.deepcopy(cfg)
    try:
        take_puzzle_shape(shaped)
        if shaped.model.seq_len != train.seq_len:
            raise ConfigError(f"model.seq_len = {shaped.model.seq_len} but {root / 'train' / 'dataset.json'} says "
                              f"seq_len = {train.seq_len}")
        if (train.seq_len, train.vocab_size) != (test.seq_len, test.vocab_size):
            raise ConfigError(f"train/ and test/ disagree: seq_len {train.seq_len} vs {test.seq_len}, vocab_size "
                              f"{train.vocab_size} vs {test.vocab_size}")
    except ConfigError as exc:
        return found + [fail(AREA, "shape", str(exc), "leave model.seq_len and model.vocab_size at their defaults "
                             "to take the dataset's, or use the dataset the preset was made for")]
    found.append(ok(AREA, "shape", f"seq_len {train.seq_len}, vocab_size {train.vocab_size}, as the config expects"))
    examples = train.total_groups * train.mean_puzzle_examples
    batch = cfg.train.batch_size
    interval = cfg.train.eval_every_epochs
    total = cfg.train.max_steps or int(cfg.train.epochs * examples / batch)
    short_interval = interval_problem(examples, batch, interval)
    short_run = None if cfg.train.max_steps else epochs_problem(examples, batch, cfg.train.epochs)
    if short_interval is not None:  # the sampler's own refusals, as the worker would meet them
        found.append(fail(AREA, "steps", short_interval, "raise train.eval_every_epochs or lower train.batch_size"))
    elif short_run is not None:
        found.append(fail(AREA, "steps", short_run, "raise train.epochs, set train.max_steps or lower "
                          "train.batch_size"))
    else:
        how = "train.max_steps" if cfg.train.max_steps else f"{cfg.train.epochs:,} epochs"
        per = f"{examples / batch:,.2f} batches a pass" if examples < batch else f"{int(examples / batch):,} a pass"
        trained = total if cfg.train.max_steps or quick else trained_steps(cfg, total)
        said = f"{trained:,} steps ({how}; {per} at batch {batch})"
        if trained != total:  # both are right, about different things: the run's count and the reference's
            said = (f"{trained:,} steps trained ({how}; the batches the reference's loop draws; {per} at batch "
                    f"{batch}); the learning-rate schedule runs over {total:,} (the reference's total_steps formula, "
                    f"epochs x groups x mean examples / batch)")
        found.append(ok(AREA, "steps", said))
    recipe = RECIPES.get(preset or "")
    if recipe is not None:
        per_group = train.total_puzzles / max(1, train.total_groups)
        groups_ok = recipe.groups is None or train.total_groups == recipe.groups
        if groups_ok and abs(per_group - recipe.per_group) <= recipe.tolerance * recipe.per_group:
            found.append(ok(AREA, "recipe", f"built as {preset}'s recipe ({per_group:,.0f} puzzles per group)"))
        else:
            seen = f"{train.total_groups:,} groups of {per_group:,.1f} puzzles (the original and its augmentations)"
            want = (f"{recipe.groups:,} groups of " if recipe.groups else "") + f"{recipe.per_group:,.0f}"
            found.append(warn(AREA, "recipe", f"{seen}; {preset}'s recipe builds {want}: the paper's score "
                              "is for that set", f"rebuild it with: {data_command(preset, cfg.data.dataset_dir)}"))
    return found


def trained_steps(cfg: Config, formula: int) -> int:
    """The steps a puzzle run by epochs trains: the batches its sampler (the reference's loader) yields, at most
    the formula's (``data.packing``); the formula itself when the set cannot be opened here."""
    from trm_core.data.factory import build_dataset
    from trm_core.data.order import order_for

    try:
        order = order_for(build_dataset(cfg), cfg.train.batch_size, cfg.train.seed, cfg.train.eval_every_epochs)
        return order.total_steps(cfg.train.epochs)
    except (ConfigError, OSError, ValueError):
        return formula


def code_checks(cfg: Config) -> list[Check]:
    if not cfg.data.paths:
        return [ok(AREA, "present", "the Python standard library's sources (data.paths is empty)")]
    missing = [p for p in cfg.data.paths if not Path(p).expanduser().exists()]
    if missing:
        return [fail(AREA, "present", f"data.paths: {missing[0]} does not exist",
                     "give files or folders of source code that exist, or leave data.paths empty")]
    return [ok(AREA, "present", f"{len(cfg.data.paths)} path(s) of source code")]


def checks(cfg: Config, preset: str | None = None, quick: bool = False) -> list[Check]:
    """``quick``: what a start checks before it launches (milliseconds): the steps by the formula alone, without
    walking the sampler's stream (seconds on an ARC set), which the worker does anyway."""
    if cfg.data.kind == "puzzles":
        return puzzle_checks(cfg, preset, quick)
    if cfg.data.kind == "code":
        return code_checks(cfg)
    path = Path(cfg.data.pairs_file).expanduser()
    if not path.is_file():
        return [fail(AREA, "present", f"data.pairs_file: {path} is not a file", "give a JSONL of input/output pairs")]
    return [ok(AREA, "present", f"{path}")]
