"""ARC votes over several checkpoints, on purpose: ``trm-tui eval --checkpoints A,B,C``.

The reference's ARC evaluator keeps its votes from one eval to the next (TinyRecursiveModels
``evaluators/arc.py`` lines 59-67: the answers are created once in the constructor and ``begin_eval`` clears
them only ``if not self.aggregated_voting``, which defaults to true), so its final ARC figure votes over every
checkpoint it evaluated during training (its issue #35). Our evals are separate (each starts from no votes);
this is the same ensemble made explicit: each named checkpoint answers the split, every answer votes in one
count, and the eval's folder keeps each member's own figures beside the ensemble's, so either figure can be
reproduced and compared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from trm_core.config import Config, ConfigError
from trm_core.evaluate.arc.vote import ArcVoting, voting_for
from trm_core.evaluate.loaded import LoadedCheckpoint
from trm_core.evaluate.batch_size import auto_batch_size
from trm_core.evaluate.session import EvalFolder, EvalOutcome, batches, event_fields
from trm_core.evaluate.trace import BatchRecord, StepTrace
from trm_core.evaluate.batch_pass import evaluate_batches, figures

Progress = Callable[[int, int], None]


@dataclass
class _Voter:
    """Feeds each traced batch's answers to the ensemble's count and to the member's own."""

    votings: tuple[ArcVoting, ...]

    def __call__(self, record: BatchRecord) -> None:
        for voting in self.votings:
            voting.add(record.puzzle_ids, record.inputs, record.final, record.exit_confidence())


def arc_voting(cfg: Config) -> ArcVoting:
    """The run's ARC voting; an error for data that has none (an ensemble votes over ARC's answers)."""
    voting = voting_for(cfg.data)
    if voting is None:
        raise ConfigError("--checkpoints votes over ARC's augmented answers; this run's data is not an ARC set "
                          "(no test_puzzles.json beside it)")
    return voting


def refuse_repeats(members: list[LoadedCheckpoint]) -> None:
    """Each checkpoint votes once: 'latest' and its own step name one checkpoint twice."""
    steps = [m.info.step for m in members]
    if len(set(steps)) != len(steps):
        raise ConfigError(f"--checkpoints names step {max(steps, key=steps.count)} twice: each checkpoint votes once")


def ensemble_name(members: list[LoadedCheckpoint], weights: str, count: int, size: int) -> str:
    steps = "+".join(str(m.info.step) for m in members)
    name = f"ensemble-{steps}-{weights}-test"
    return name if count >= size else f"{name}-first{count}"


def run_ensemble(members: list[LoadedCheckpoint], limit: int | None, batch_size: int | None,
                 on_progress: Progress | None, evals: Path) -> EvalOutcome:
    """Each member evaluates the test split; every answer votes in one ARC count. Writes
    ``evals/ensemble-A+B+C-WEIGHTS-test/`` (metrics.json: the ensemble's pass@k and each member's figures;
    arc_votes.json: the ensemble's voted answers) and returns it."""
    first = members[0]
    voting = first.voting
    if voting is None:
        voting = arc_voting(first.cfg)  # the refusal
    refuse_repeats(members)
    steps = [m.info.step for m in members]
    size = first.dataset.split_size("test")
    count = size if limit is None else max(0, min(limit, size))
    if count == 0:
        raise ConfigError("the test split of this run's data has no examples to evaluate")
    ensemble = voting.empty()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for k, loaded in enumerate(members):
        ev = loaded.ev
        batch = batch_size or auto_batch_size(ev, loaded.cfg.model.seq_len, count)
        own = voting.empty()

        def progress(done: int, total: int, k: int = k, batch: int = batch) -> None:
            if on_progress is not None:
                on_progress(k * count + min(count, done * batch), len(members) * count)

        totals, scored, any_hidden = evaluate_batches(ev, batches(loaded, "test", count, batch), None, progress,
                                                      StepTrace(ev.halt_logit_threshold, _Voter((own, ensemble))),
                                                      total=-(-count // batch))
        rows.append(event_fields(figures(totals, scored, any_hidden) | own.result())
                    | {"step": loaded.info.step, "checkpoint": loaded.info.path.name})
    seconds = time.perf_counter() - t0
    metrics = event_fields(ensemble.result()) | {
        "ensemble": steps, "members": rows, "weights": first.weights, "split": "test", "examples": count,
        "device": str(first.ev.device), "seconds": round(seconds, 3), "time": time.time(),
        "step": max(steps), "checkpoint": None}
    # metrics.json and arc_votes.json, built under a temporary name and renamed whole, as every eval's folder
    folder = EvalFolder(evals, ensemble_name(members, first.weights, count, size), count, first.cfg.model.seq_len,
                        first.ev.max_sup, first.dataset.vocab_size, False, {}, None, save_predictions=False)
    try:
        return EvalOutcome(folder.finish(metrics, ensemble), metrics)
    finally:
        folder.discard()
