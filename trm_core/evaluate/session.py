"""One eval of a checkpoint on a split, written as ``RUN/evals/step-N-WEIGHTS-SPLIT/``: ``metrics.json`` (an
``eval`` event's figures, the share solved after each supervision step, how fast it ran), ``predictions/``
(``evaluate.predictions``) and, for ARC, ``arc_votes.json`` (the voted answers of each test input).

The folder is built under a temporary name and renamed into place when complete, so an interrupted eval
(Ctrl-C, a kill) leaves nothing half-written, and a finished one replaces an older eval of the same name whole.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from trm_core.config import Config, ConfigError
from trm_core.data.base import Batch, Dataset
from trm_core.evaluate.arc.vote import ArcVoting
from trm_core.evaluate.test_time.halting_calibration import calibration
from trm_core.evaluate.loaded import LoadedCheckpoint
from trm_core.evaluate.predictions import ARC_VOTES, METRICS, PREDICTIONS, PredictionWriter
from trm_core.evaluate.tasks import task_of
from trm_core.evaluate.test_time.settings import TestTime, steps_used
from trm_core.evaluate.trace import BatchRecord, StepTrace
from trm_core.rundir.scores import headline
from trm_core.evaluate.batch_pass import evaluate_batches, figures
from trm_core.evaluate.batch_size import auto_batch_size, check_fits
from trm_core.rundir import layout, strict_json

SPLITS = ("test", "train")
Progress = Callable[[int, int], None]  # (examples done, examples in all)


@dataclass
class EvalOutcome:
    folder: Path
    metrics: dict[str, Any]


def folder_name(step: int, weights: str, split: str, count: int, split_size: int) -> str:
    name = f"step-{step}-{weights}-{split}"
    return name if count >= split_size else f"{name}-first{count}"


def halting_figures(exact: np.ndarray | None, halt_step: np.ndarray | None,
                    fired: np.ndarray | None) -> dict[str, float | None]:
    """How good the halting head's decisions are, counting only the decisions it made: ``halt_fired`` is the
    share of examples whose head said stop at some step, ``halt_precision`` the share of those whose whole
    answer was right at that step. An example whose head never fired is no right decision: the reference's
    ``q_halt_accuracy`` (models/losses.py line 81, ``(q_halt_logits >= 0) == seq_is_correct``) counts
    "did not halt, was not right" as right, so a head that never fires on a model that never solves anything
    scores 100% (TinyRecursiveModels issue #28). None where no head fired (nothing to be precise about)."""
    if exact is None or halt_step is None or fired is None or not len(fired):
        return {"halt_fired": None, "halt_precision": None}
    rows = np.flatnonzero(fired)
    right = exact[rows, halt_step[rows].astype(np.int64) - 1]
    return {"halt_fired": round(float(fired.mean()), 4),
            "halt_precision": round(float(right.mean()), 4) if len(rows) else None}


def solved_by_step(exact: np.ndarray, exit_step: np.ndarray) -> list[float]:
    """The share of examples whose whole answer is right after each supervision step; an example that exited
    earlier (``model.halt_in_eval``) keeps the answer it exited with."""
    if not len(exact):
        return []
    steps = exact.shape[1]
    at_exit = exact[np.arange(len(exact)), exit_step.astype(np.int64) - 1]
    ran = np.arange(1, steps + 1)[None, :] <= exit_step[:, None]
    return [round(float(v), 6) for v in np.where(ran, exact, at_exit[:, None]).mean(0)]


def batches(loaded: LoadedCheckpoint, split: str, count: int, batch_size: int) -> Iterator[Batch]:
    for start in range(0, count, batch_size):
        yield loaded.dataset.examples(split, start, min(batch_size, count - start))


class EvalFolder:
    """One eval's folder in the making: every batch's record goes to the predictions writer, the ARC votes and
    the per-step tallies; ``finish`` writes metrics.json (and arc_votes.json) and renames it into place;
    ``discard`` leaves nothing."""

    def __init__(self, evals: Path, name: str, count: int, seq_len: int, max_sup: int, vocab_size: int,
                 has_hidden: bool, context: dict[str, Any], voting: ArcVoting | None,
                 save_predictions: bool = True, trajectories: int = 1) -> None:
        self.final = evals / name
        self.max_sup = max_sup
        self.tmp = layout.temp_name(evals / name)
        self.tmp.mkdir(parents=True, exist_ok=True)
        layout.remove_dead_temps(evals)  # an eval killed before its rename (SIGKILL) left its folder behind
        self.writer = PredictionWriter(self.tmp / PREDICTIONS, count, seq_len, max_sup, vocab_size, has_hidden,
                                       context, trajectories) if save_predictions else None
        self.voting = voting  # fed from the records here (trm-tui eval); None when the eval counts its own votes
        if voting is not None:
            voting.reset()
        self.exact: list[np.ndarray] = []
        self.exit_step: list[np.ndarray] = []
        self.halt_step: list[np.ndarray] = []
        self.halt_fired: list[np.ndarray] = []
        self.halt_prob: list[np.ndarray] = []

    def __call__(self, record: BatchRecord) -> None:
        if self.writer is not None:
            self.writer.add(record)
        if self.voting is not None:
            self.voting.add(*record.voters())
        self.exact.append(record.exact)
        self.exit_step.append(record.exit_step)
        self.halt_step.append(record.halt_step)
        self.halt_prob.append(record.halt_prob)
        if record.halt_fired is not None:
            self.halt_fired.append(record.halt_fired)

    def per_step(self) -> dict[str, Any]:
        """The figures only a traced eval has: the share solved after each step, the mean halting step."""
        if not self.exact:
            return {"exact_by_step": [], "halt_step_mean": None} | halting_figures(None, None, None) | \
                steps_used([], self.max_sup) | {"halt_reliability": [], "halt_choices": None}
        halt, exact, exits = np.concatenate(self.halt_step), np.concatenate(self.exact), np.concatenate(self.exit_step)
        fired = np.concatenate(self.halt_fired) if self.halt_fired else None
        return {"exact_by_step": solved_by_step(exact, exits),
                "halt_step_mean": round(float(halt.mean()), 4)} | halting_figures(exact, halt, fired) | \
            steps_used(exits.tolist(), self.max_sup) | calibration(np.concatenate(self.halt_prob), exact)

    def finish(self, metrics: dict[str, Any], voting: ArcVoting | None = None) -> Path:
        """Write the rest and put the folder in place; ``voting``: the ARC votes, when counted elsewhere."""
        if self.writer is not None:
            self.writer.close()
        (self.tmp / METRICS).write_text(strict_json.dumps(metrics, indent=1))
        voting = voting or self.voting
        if voting is not None:
            (self.tmp / ARC_VOTES).write_text(json.dumps(voting.answers()))
        _replace(self.tmp, self.final)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_eval(loaded: LoadedCheckpoint, split: str = "test", limit: int | None = None,
             batch_size: int | None = None, on_progress: Progress | None = None,
             save_predictions: bool = True, evals: Path | None = None,
             test_time: TestTime = TestTime()) -> EvalOutcome:
    """Evaluate, write the eval's folder (under ``evals``, the run's ``evals/`` by default), and return it
    with its metrics. ``test_time``: more supervision steps than trained, halting at eval (``test_time``)."""
    dataset, ev = loaded.dataset, test_time.apply(loaded.ev)
    trained = loaded.cfg.model.max_supervision_steps
    size = dataset.split_size(split)
    count = size if limit is None else max(0, min(limit, size))
    if count == 0:
        raise ConfigError(f"the {split} split of this run's data has no examples to evaluate")
    seq_len = loaded.cfg.model.seq_len
    check_fits(ev, loaded.cfg.model, dataset.vocab_size, batch_size)
    batch = batch_size or auto_batch_size(ev, seq_len, count, loaded.cfg.model, dataset.vocab_size)
    voting = loaded.voting if split == "test" else None
    name = folder_name(loaded.info.step, loaded.weights, split, count, size) + test_time.folder_suffix(trained)
    folder = EvalFolder(evals or loaded.run.evals, name, count, seq_len, ev.max_sup, dataset.vocab_size,
                        loaded.cfg.data.kind == "code", context_of(loaded, split, test_time), voting, save_predictions,
                        test_time.trajectories.count)
    try:
        t0 = time.perf_counter()

        def progress(k: float, total: int) -> None:  # k: batches done, fractional inside a batch
            if on_progress is not None:
                on_progress(min(count, k * batch), count)

        totals, scored, any_hidden = evaluate_batches(ev, batches(loaded, split, count, batch), None, progress,
                                                      StepTrace(ev.halt_logit_threshold, folder),
                                                      total=-(-count // batch), within_batch=True)
        seconds = time.perf_counter() - t0
        metrics = figures(totals, scored, any_hidden) | (voting.result() if voting is not None else {})
        metrics = metrics_record(metrics, folder.per_step(), loaded, split, count, batch, seconds) | \
            test_time.record(loaded.cfg.model)
        final = folder.finish(metrics)
    finally:
        folder.discard()
    return EvalOutcome(final, metrics)


def context_of(loaded: LoadedCheckpoint, split: str, test_time: TestTime = TestTime()) -> dict[str, Any]:
    """What the browser needs to draw an example of ``loaded``'s eval (``eval_context``)."""
    return eval_context(loaded.cfg, loaded.dataset, loaded.info.step, loaded.weights, split, loaded.run.root,
                        test_time)


def eval_context(cfg: Config, dataset: Dataset, step: int, weights: str, split: str, run_dir: Path,
                 test_time: TestTime) -> dict[str, Any]:
    """What the browser needs to draw an example: the task, the data, the checkpoint, and how it ran; the same
    for ``trm-tui eval`` and the in-training eval's saved predictions."""
    return {"task": task_of(cfg, dataset), "data_kind": cfg.data.kind, "dataset_dir": cfg.data.dataset_dir,
            "vocab_size": dataset.vocab_size, "step": step, "weights": weights, "split": split,
            "run_dir": str(run_dir)} | test_time.context(cfg.model)


def event_fields(figures_: dict[str, Any]) -> dict[str, Any]:
    """An eval's figures under the names its ``eval`` event gives them (pass@1, pass@2), with its headline."""
    out = {("pass@1" if k == "pass_at_1" else "pass@2" if k == "pass_at_2" else k): v for k, v in figures_.items()}
    figure = headline(figures_)
    return out | {"score": figure[1] if figure else None, "score_name": figure[0] if figure else None}


def metrics_record(figures_: dict[str, Any], per_step: dict[str, Any], loaded: LoadedCheckpoint, split: str,
                   count: int, batch: int, seconds: float) -> dict[str, Any]:
    """metrics.json: the eval event's fields, the per-step figures, then where and how fast this eval ran."""
    return event_fields(figures_) | per_step | {
        "step": loaded.info.step, "epoch": loaded.info.epoch, "checkpoint": loaded.info.path.name,
        "weights": loaded.weights, "split": split, "examples": count, "batch_size": batch,
        "device": str(loaded.ev.device), "seconds": round(seconds, 3),
        "examples_per_s": round(count / seconds, 2) if seconds > 0 else None, "time": time.time()}


def _replace(tmp: Path, final: Path) -> None:
    """Put the finished folder in place of any older one of the same name (the old one goes only after)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)

