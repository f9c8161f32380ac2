"""``train.init_from``: a new run's starting weights, from a run's checkpoint, a model folder or a hub repository.

Every weight must fit the new run's model but one: a puzzle-embedding table with another number of rows (a new
set's puzzles) is replaced by its mean row, as the reference's ``load_checkpoint`` does (pretrain.py lines 251-261,
after "Resize and reset puzzle emb if needed"), so a model trained on ARC-AGI-1 fine-tunes on tasks it never saw.
The optimizer and the schedule start fresh."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm_core.config import ConfigError

PUZZLE_TABLE = "puzzle_emb.weights"


@dataclass(frozen=True)
class InitialWeights:
    state: dict[str, Any]
    source: str        # where they came from, for run_start, status and the model card
    note: str = ""     # what was adapted (the puzzle table), in words


def split_run_spec(spec: str) -> tuple[Path, str]:
    """``RUN_DIR[:latest|best|STEP]`` -> (the folder, which checkpoint)."""
    head, sep, tail = spec.rpartition(":")
    if sep and (tail.isdigit() or tail in ("latest", "best")) and head:
        return Path(head).expanduser(), tail
    return Path(spec).expanduser(), "latest"


# the model keys that change a weight's shape (a new run may change the others: halting, recursion counts)
SHAPE_KEYS = ("net", "dim", "depth", "expansion_factor", "expansion_factor_token", "expansion", "puzzle_emb_len")


def problem(spec: str, model: Any = None) -> str | None:
    """Why ``spec`` names no weights that fit ``model`` (the new run's model section), in milliseconds and without
    torch (a front end checks before it launches); None when they may (a hub repository is asked only when the
    worker starts, and the worker checks every shape)."""
    from trm_core.weights.sources import is_hub, parse_hub

    if not spec:
        return None
    if is_hub(spec):
        try:
            parse_hub(spec, "train.init_from =")
        except ConfigError as exc:
            return str(exc)
        return None
    folder, which = split_run_spec(spec)
    if not folder.is_dir():
        return f"train.init_from = {spec!r}: no such folder (a run folder, a model folder, or hf:OWNER/NAME)"
    if not (folder / "config.json").is_file() and not (folder / "checkpoints").is_dir():
        return (f"train.init_from = {spec!r}: neither a run (no checkpoints/) nor a model folder (no config.json)")
    if not (folder / "config.json").is_file():
        missing = _checkpoint_problem(folder, which)
        if missing:
            return f"train.init_from = {spec!r}: {missing}"
    return None if model is None else _shape_problem(spec, folder, model)


def _checkpoint_problem(folder: Path, which: str) -> str | None:
    """A run's checkpoint that is not there (``RUN:999``) or none that verifies, said before anything starts
    (``best`` is the worker's to choose, from the run's log)."""
    from trm_core.rundir import checkpoints as ckpt

    found = ckpt.list_checkpoints(folder / "checkpoints")
    steps = ", ".join(str(i.step) for i in sorted(found, key=lambda i: i.step)) or "none"
    if which.isdigit() and int(which) not in {i.step for i in found}:
        return f"no checkpoint of step {which} (checkpoints at steps: {steps})"
    if which == "latest" and ckpt.newest_verified(folder / "checkpoints")[0] is None:
        return f"no checkpoint that verifies (checkpoints at steps: {steps})"
    return None


def _shape_problem(spec: str, folder: Path, model: Any) -> str | None:
    import json

    from trm_core.config.run_config import saved_config

    try:
        if (folder / "config.json").is_file():
            theirs = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model", {})
        else:
            theirs = vars(saved_config(folder).model)
    except (OSError, ValueError, ConfigError):
        return None  # the worker's load says what is wrong with it
    keys = SHAPE_KEYS + (() if model.net == "attention" else ("seq_len",))  # the mixer's and mlp_t's token MLPs
    differ = [f"model.{k} = {theirs[k]!r} there, {getattr(model, k)!r} here" for k in keys
              if k in theirs and theirs[k] != getattr(model, k)]
    if differ:
        return (f"train.init_from = {spec!r}: its model has other shapes ({'; '.join(differ)}); set this run's "
                f"model section as the source's")
    return None


def source_weights(spec: str) -> tuple[dict[str, Any], str, str]:
    """The weights ``spec`` names, on the CPU, how to name their source, and how the checkpoint was chosen when
    the user should hear it (a newer one skipped, and why)."""
    from trm_core.weights.sources import is_hub

    folder, which = split_run_spec(spec)
    if is_hub(spec) or (folder / "config.json").is_file():
        from trm_core.weights.model_folder import load_model_folder
        from trm_core.weights.model_run import model_folder

        path, source = model_folder(spec)
        model, _ = load_model_folder(path)
        return model.state_dict(), source, ""
    from trm_core.evaluate import loaded as loading
    from trm_core.rundir.layout import RunDir

    try:
        checkpoint = loading.load(RunDir.at(folder), which, device="cpu")
    except ConfigError as exc:
        raise ConfigError(f"train.init_from = {spec!r}: {str(exc).replace('--checkpoint ', '')}") from None
    return (checkpoint.ev.model.state_dict(),
            f"{folder.resolve()} step {checkpoint.info.step} ({checkpoint.weights} weights)", checkpoint.why)


def fit(state: dict[str, Any], expected: dict[str, Any], source: str) -> InitialWeights:
    """``state`` made to fit ``expected`` (the new model's state dict): the puzzle table resized, the rest equal."""
    import torch

    from trm_core.weights.tensor_checks import refuse

    problems, fitted, note = [], {}, ""
    for name, want in expected.items():
        have = state.get(name)
        if have is None:
            problems.append(f"{name}: not in the source")
        elif have.shape == want.shape:
            fitted[name] = have.to(want.dtype)
        elif name == PUZZLE_TABLE and have.dim() == 2 and have.shape[1] == want.shape[1]:
            fitted[name] = torch.mean(have.float(), dim=0, keepdim=True).expand(want.shape).contiguous().to(want.dtype)
            note = (f"the puzzle embedding ({have.shape[0]} puzzles) is replaced by its mean row for this set's "
                    f"{want.shape[0]}")
        else:
            problems.append(f"{name}: {tuple(have.shape)} in the source, {tuple(want.shape)} in this run's model")
    problems += [f"{name}: in the source, not in this run's model" for name in state if name not in expected]
    refuse(problems, f"train.init_from = {source}", "its weights do not fit this run's model (the model section "
           "must match the source's)", shown=6)
    return InitialWeights(fitted, source, note)


def initial_weights(spec: str, expected: dict[str, Any]) -> InitialWeights:
    state, source, why = source_weights(spec)
    start = fit(state, expected, source)
    return start if not why else InitialWeights(start.state, start.source, "; ".join(filter(None, [why, start.note])))
