"""The in-training eval's pieces: the fixed held-out batches, the trainer's eval with ARC's votes counted
across ranks, and the one-line score a run ends with."""

from __future__ import annotations

from typing import Callable

from trm_core.data import Dataset
from trm_core.distributed.group import Group
from trm_core.train.trainer import Trainer


def evaluate_with_votes(trainer: Trainer, dataset: Dataset, group: Group, batches: list,
                        on_progress: Callable[[int, int], None]) -> dict:
    """The trainer's eval, with ARC's votes counted where the dataset has them. With several ranks each
    evaluates its share of the batches; rank 0 counts every rank's votes, in the batches' order."""
    voting = getattr(dataset, "voting", None)
    mine = group.spread(batches)
    if voting is None:
        return trainer.evaluate(mine, on_progress=on_progress)
    seen: list[tuple] = []
    result = trainer.evaluate(mine, on_progress=on_progress, observe=lambda batch, preds, conf: seen.append(
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
