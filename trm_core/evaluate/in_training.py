"""The eval a run does as it trains: the fixed held-out batches, the trainer's weights (its EMA's when it keeps
one) through the same per-batch pass as ``trm-tui eval`` with ARC's votes counted across ranks, its predictions
written as ``trm-tui eval`` writes them, and the one-line score a run ends with."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from trm_core.data import Batch, Dataset
from trm_core.distributed.group import Group
from trm_core.evaluate import session
from trm_core.evaluate.arc.vote import ArcVoting
from trm_core.evaluate.batch_pass import evaluate_batches, figures
from trm_core.evaluate.eval_model import EvalModel, Observer, Trace
from trm_core.evaluate.test_time.settings import TestTime
from trm_core.train.steps.step_host import StepHost
from trm_core.train.trainer import Trainer


@torch.inference_mode()
def evaluate_trainer(tr: StepHost, batches: list[Batch], observe: Observer | None = None,
                     on_progress: Callable[[int, int], None] | None = None,
                     trace: Trace | None = None) -> dict[str, float]:
    """Loss and accuracy at each sample's exit, using the EMA weights when there are any. Samples run every
    supervision step, as the paper evaluates, unless ``model.halt_in_eval`` lets them halt as in training.
    ``observe(batch, predictions, confidence)`` hears each batch's predicted tokens and halting probability
    at each sample's exit (ARC votes on them); ``on_progress(k, K)`` hears each finished batch. With several
    ranks each passes its own batches and the sums are added across them."""
    ev = TestTime.in_training(tr.cfg).apply(EvalModel.of_trainer(tr))
    totals, count, any_hidden = evaluate_batches(ev, batches, observe, on_progress, trace)
    if tr.group.distributed:  # each rank evaluated its share of the batches
        summed = tr.group.sum(torch.tensor([*totals.values(), count, any_hidden], dtype=torch.float64,
                                           device=tr.device)).tolist()
        totals = dict(zip(totals, summed[:len(totals)]))
        count, any_hidden = int(summed[len(totals)]), bool(summed[-1])
    return figures(totals, count, any_hidden)


def evaluate_with_votes(trainer: Trainer, voting: ArcVoting | None, group: Group, batches: list,
                        on_progress: Callable[[int, int], None], trace: Trace | None = None) -> dict:
    """The trainer's eval, with ARC's votes counted where the run's data has them (``arc.vote.voting_for``).
    With several ranks each evaluates its share of the batches; rank 0 counts every rank's votes, in the
    batches' order."""
    mine = group.spread(batches)
    if voting is None:
        return evaluate_trainer(trainer, mine, on_progress=on_progress, trace=trace)
    seen: list[tuple] = []
    result = evaluate_trainer(trainer, mine, on_progress=on_progress, trace=trace,
                              observe=lambda batch, preds, conf: seen.append(
                                  (batch.puzzle_ids.numpy(), batch.inputs.numpy(), preds.numpy(), conf.numpy())))
    per_rank = group.objects(seen) if group.distributed else [seen]
    if not group.leader:
        return result
    voting.reset()
    world = len(per_rank)
    for index in range(len(batches)):  # batch i was rank i % world's (i // world)-th
        voting.add(*per_rank[index % world][index // world])
    return result | voting.result()


def score_text(ev: dict | None, dataset: Dataset) -> str:
    """An eval's figure that fits the task, beside what a model that learned nothing would score."""
    if not ev:
        return ""
    if ev.get("masked_accuracy") is not None:
        text = f"held-out masked-byte accuracy {ev['masked_accuracy']:.3f}"
        baseline = getattr(dataset, "baseline", None)
        return text + (f" ({baseline[0]}: {baseline[1]:.3f})" if baseline else "")
    text = f"held-out accuracy {ev['accuracy']:.3f}, whole answers right {ev['exact']:.3f}"
    if ev.get("pass_at_2") is not None:
        text += f"; ARC pass@1 {ev['pass_at_1']:.3f}, pass@2 {ev['pass_at_2']:.3f} over {ev['voted_puzzles']} puzzles"
    return text


def eval_set(ds: Dataset, batch_size: int, batches: int) -> list:
    """The fixed batches every eval uses: ``batches`` of them, or with 0 the whole held-out split once."""
    if batches:
        return [ds.eval_batch(i * batch_size, batch_size) for i in range(batches)]
    return [ds.eval_batch(start, min(batch_size, ds.num_eval - start)) for start in range(0, ds.num_eval, batch_size)]


def save_predictions(trainer: Trainer, dataset: Dataset, voting: ArcVoting | None, group: Group, records: list,
                     result: dict, step: int, epoch: int, seconds: float, evals: Path) -> Path | None:
    """``train.eval_save_predictions``: the eval just run, written as ``trm-tui eval`` writes one (rank 0 writes
    every rank's batches, in the batches' order). A collective: every rank calls it."""
    per_rank = group.objects(records) if group.distributed else [records]
    if not group.leader:
        return None
    world = len(per_rank)
    ordered = [per_rank[i % world][i // world] for i in range(sum(map(len, per_rank)))]
    count = sum(map(len, ordered))
    cfg = trainer.cfg
    weights = "ema" if trainer.ema is not None else "raw"
    size = dataset.split_size("test")
    test_time = TestTime.in_training(cfg)
    trained = cfg.model.max_supervision_steps
    context = session.eval_context(cfg, dataset, step, weights, "test", evals.parent, test_time)
    name = session.folder_name(step, weights, "test", count, size) + test_time.folder_suffix(trained)
    folder = session.EvalFolder(evals, name, count, cfg.model.seq_len, test_time.steps(trained), dataset.vocab_size,
                                cfg.data.kind == "code", context, voting=None,
                                trajectories=test_time.trajectories.count)
    try:
        for record in ordered:
            folder(record)
        metrics = session.event_fields(result) | folder.per_step() | {
            "step": step, "epoch": epoch, "checkpoint": None, "weights": weights, "split": "test",
            "examples": count, "batch_size": cfg.train.batch_size, "device": str(trainer.device),
            "seconds": round(seconds, 3), "in_training": True} | test_time.record(cfg.model)
        return folder.finish(metrics, voting)
    finally:
        folder.discard()
