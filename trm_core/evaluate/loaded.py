"""A run's checkpoint made ready to evaluate: which checkpoint (latest, best or a step), which weights (the EMA
or the raw ones), the run's own config and dataset, on the run's device or another.

Nothing here touches the run: no lock is taken, nothing is written, so it is safe beside a live worker (the
checkpoint's bytes are verified before they are read, and a prune that removes the file mid-read cannot
change what an open file holds).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from trm_core.config import Config, ConfigError
from trm_core.config.run_config import saved_config
from trm_core.data import Dataset, build_dataset
from trm_core.evaluate.arc.vote import ArcVoting, voting_for
from trm_core.evaluate.tasks import task_of
from trm_core.rundir import checkpoints as ckpt
from trm_core.rundir import log_queries
from trm_core.rundir.layout import RunDir
from trm_core.rundir.records import Eval
from trm_core.rundir.scores import headline
from trm_core.evaluate.eval_model import EvalModel
from trm_core.train.losses import LOSSES
from trm_core.train.model import build_model
from trm_core.train.halting import halt_logit_threshold
from trm_core.train.sample_loss import SampleLoss

WEIGHTS = ("ema", "raw")


@dataclass
class LoadedCheckpoint:
    run: RunDir
    cfg: Config
    dataset: Dataset
    info: ckpt.CheckpointInfo
    weights: str          # "ema" or "raw"
    ev: EvalModel
    why: str = ""         # how the checkpoint was chosen, when the user should hear it (a skip, a tie)
    voting: ArcVoting | None = None  # ARC's votes for pass@k (``arc.vote.voting_for``); None for other data


@dataclass(frozen=True)
class Chosen:
    info: ckpt.CheckpointInfo
    why: str = ""


def eval_scores(run: RunDir) -> dict[int, tuple[str, float, float | None]]:
    """Each evaluated step's figure (label, value) and its token accuracy, from the run's whole log, the newest
    eval of a step kept."""
    scores = {}
    for ev in log_queries.every(run.events, Eval):
        figure = headline(ev.__dict__)
        if figure is not None:
            scores[ev.step] = (*figure, ev.accuracy)
    return scores


def pick_checkpoint(run: RunDir, which: str) -> Chosen:
    """``latest`` (the newest that verifies), ``best`` (the checkpoint whose step's eval scored best in the
    log) or a step number; an error says which checkpoints there are. ``why`` names a newer checkpoint that
    was skipped (and what is wrong with it), or how ``best`` chose among ties."""
    found = ckpt.list_checkpoints(run.checkpoints)
    if not found:
        raise ConfigError(f"{run.checkpoints}: no checkpoints (a run saves one every train.checkpoint_every steps "
                          f"and when it stops)")
    steps = ", ".join(str(i.step) for i in sorted(found, key=lambda i: i.step))
    if which == "latest":
        info, failed = ckpt.newest_verified(run.checkpoints)
        if info is None:
            raise ConfigError(f"{run.checkpoints}: no checkpoint verifies ({failed[0][1]})")
        return Chosen(info, skipped_text(failed, info))
    if which == "best":
        return best_checkpoint(run, found, steps)
    try:
        step = int(which)
    except ValueError:
        raise ConfigError(f"--checkpoint {which}: expected latest, best or a step number") from None
    matching = [i for i in found if i.step == step]
    if not matching:
        raise ConfigError(f"--checkpoint {step}: no checkpoint of that step (checkpoints at steps: {steps})")
    problem = ckpt.verify(matching[0])
    if problem is not None:
        raise ConfigError(f"{run.checkpoints}: {problem}")
    return Chosen(matching[0])


def skipped_text(failed: list[tuple[ckpt.CheckpointInfo, str]], used: ckpt.CheckpointInfo) -> str:
    """The newer checkpoints that did not verify, each with what is wrong, and the one used instead."""
    if not failed:
        return ""
    skipped = "; ".join(f"{info.path.name} (step {info.step}): {problem}" for info, problem in failed)
    return f"skipped {skipped}; using {used.path.name} (step {used.step}), the newest that verifies"


def best_checkpoint(run: RunDir, found: list[ckpt.CheckpointInfo], steps: str) -> Chosen:
    """The checkpoint whose step's eval scored best by the task's figure; ties by token accuracy, then the
    later step (a run that never solved a puzzle still learned something between its evals)."""
    scores = eval_scores(run)
    scored = [i for i in found if i.step in scores]
    if not scored:
        evals = ", ".join(map(str, sorted(scores))) or "none"
        raise ConfigError(f"--checkpoint best: no checkpoint was saved at an evaluated step (evals at steps: "
                          f"{evals}; checkpoints at steps: {steps}); name a step instead")
    ranked = sorted(scored, key=lambda i: (scores[i.step][1], scores[i.step][2] or 0.0, i.step), reverse=True)
    info = ranked[0]
    label, value, accuracy = scores[info.step]
    why = f"--checkpoint best: step {info.step}, {label} {value:.4f}"
    tied = [i.step for i in ranked if scores[i.step][1] == value]
    if len(tied) > 1:
        same_acc = [s for s in tied if scores[s][2] == accuracy]
        why += (f", tied on {label} with step{'s' if len(tied) > 2 else ''} "
                f"{', '.join(str(s) for s in sorted(tied) if s != info.step)}; chosen by accuracy "
                f"{accuracy if accuracy is not None else float('nan'):.4f}"
                + (", then the later step" if len(same_acc) > 1 else ""))
    problem = ckpt.verify(info)
    if problem is not None:
        raise ConfigError(f"{run.checkpoints}: {problem}")
    return Chosen(info, why)


def run_config(run: RunDir) -> Config:
    """The run's own config, as its worker resolved it."""
    return saved_config(run.root)


def run_data(run: RunDir) -> tuple[Config, Dataset, str]:
    """The run's config, its dataset, and the task its examples are drawn as (``tasks.task_of``); a ``--model``
    run made without a dataset has its model's shape instead (enough to solve a puzzle, not to evaluate)."""
    from trm_core.rundir.model_shape import shape_of

    cfg = run_config(run)
    shape = None if cfg.data.dataset_dir else shape_of(run)
    dataset = shape if shape is not None else build_dataset(cfg)
    return cfg, dataset, task_of(cfg, dataset)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA device is available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: not a torch device (cpu, cuda, cuda:1, ...)") from None


def load(run: RunDir, which: str = "latest", weights: str | None = None, device: str | None = None,
         cfg: Config | None = None, dataset: Dataset | None = None,
         voting: ArcVoting | None = None) -> LoadedCheckpoint:
    """The checkpoint ``which`` of ``run`` with its ``weights`` (the EMA's when the run keeps one, as the
    in-training eval, unless given) on ``device`` (the run's when not given)."""
    if not run.root.is_dir():
        raise ConfigError(f"--run-dir {run.root}: no such run folder")
    cfg = cfg or run_config(run)
    chosen = pick_checkpoint(run, which)
    info = chosen.info
    has_ema = cfg.train.ema_decay > 0
    weights = weights or ("ema" if has_ema else "raw")
    if weights not in WEIGHTS:
        raise ConfigError(f"--weights {weights}: expected ema or raw")
    if weights == "ema" and not has_ema:
        raise ConfigError("--weights ema: this run keeps no EMA of its weights (train.ema_decay = 0); use --weights raw")
    dev = resolve_device(device or cfg.train.device)
    try:
        dataset = dataset or build_dataset(cfg)
    except PermissionError as exc:  # another user's data, or a folder moved since: say which file
        raise ConfigError(f"cannot read the run's data: {exc.filename}: {exc.strerror}") from None
    try:
        state = ckpt.load_checkpoint(info, map_location=dev)
    except PermissionError as exc:
        raise ConfigError(f"cannot read the checkpoint: {exc.filename}: {exc.strerror}") from None
    model = build_model(cfg.model, dataset.vocab_size, getattr(dataset, "num_puzzle_ids", 1)).to(dev)
    model.load_state_dict(state["model"])
    if weights == "ema":
        shadow = state["ema"]["weights"]
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(shadow[name])
    model.requires_grad_(False).eval()
    if cfg.train.precision == "bf16":
        model.forward_dtype = torch.bfloat16
    use_autocast = dev.type == "cuda" and cfg.train.precision == "autocast"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_autocast else contextlib.nullcontext
    ev = EvalModel(model, dev, cfg.model.max_supervision_steps, cfg.model.halt_in_eval,
                   halt_logit_threshold(cfg.model.halt_threshold),
                   SampleLoss(LOSSES[cfg.train.loss], loss_on_hidden=cfg.data.loss_on == "masked"), autocast)
    return LoadedCheckpoint(run, cfg, dataset, info, weights, ev, chosen.why, voting or voting_for(cfg.data))
