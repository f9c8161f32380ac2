"""One eval batch run as K trajectories per example (``evaluate.test_time.trajectories``): the rows repeated K
times, one forward per supervision step over all of them, an example's trajectories exiting together at the
last step, as soon as one of them halts (``--halt``: the first trajectory whose head is sure answers, as a
deployed model would), or once M of its answers agree (``settle``); then one trajectory kept per example and
only it scored.

With ``escalate`` the compute goes where it pays: every example first runs one plain trajectory, and only
those whose halting head was never sure run the K noisy ones (their answer replaces the plain one). Most
examples are easy, so most run 1 trajectory instead of K.

The figures are the kept trajectories', so the eval's fields mean what they always meant; ``forward_steps``
adds what the example cost: the supervision steps run by all its trajectories, both rounds. A ``Trace`` hears
the kept trajectory's steps as if it had run alone, then every trajectory's answer at exit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from trm_core.data.base import Batch
from trm_core.evaluate.eval_model import EvalModel, Observer, Running, Trace, add_figures, exiting_rows
from trm_core.evaluate.test_time.trajectories import LatentNoise, Trajectories, choose, settled
from trm_core.train.halting import halts

FORWARD_STEPS = "forward_steps"  # an eval's figure: supervision steps run per example, all its trajectories
ESCALATED = "escalated"  # with escalate: the examples whose plain trajectory was never sure (a mean: their share)
StepRows = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class _Outcome:
    """One pass over a batch, per example (B of them, K trajectories each), on the device: the kept
    trajectory's figures at its exit, every trajectory's answer, halting logit and step at exit, which was
    kept, the kept one's steps for the trace (example rows, answers, halting logits, exact, accuracy, exiting),
    the supervision steps run over all rows, and which examples a halting head stopped."""

    ce: torch.Tensor
    accuracy: torch.Tensor
    exact: torch.Tensor
    hidden_accuracy: torch.Tensor | None
    step: torch.Tensor
    answers: torch.Tensor  # (B, K, L)
    logits: torch.Tensor   # (B, K)
    steps: torch.Tensor    # (B, K)
    chosen: torch.Tensor   # (B,)
    trace: list[StepRows]
    forward_steps: int
    halted: torch.Tensor

    def replace_rows(self, rows: torch.Tensor, other: "_Outcome") -> "_Outcome":
        """These examples answered by ``other`` (a pass over just them, in that order, K trajectories each);
        the rest keep theirs, their one trajectory repeated K times."""
        k = other.answers.shape[1]
        merged = dataclasses.replace(
            self, answers=self.answers.expand(-1, k, -1), logits=self.logits.expand(-1, k),
            steps=self.steps.expand(-1, k), forward_steps=self.forward_steps + other.forward_steps)
        for name in ("ce", "accuracy", "exact", "hidden_accuracy", "step", "answers", "logits", "steps", "chosen",
                     "halted"):
            mine = getattr(merged, name)
            if mine is not None:
                mine = mine.clone(memory_format=torch.contiguous_format)  # an expanded view becomes K copies
                mine[rows] = getattr(other, name)
                setattr(merged, name, mine)
        replaced = torch.zeros(len(self.step), dtype=torch.bool, device=rows.device)
        replaced[rows] = True
        merged.trace = [_merge_step(a, b, rows, replaced) for a, b in zip(self.trace, other.trace)] + \
            [tuple(t[~replaced[a[0]]] for t in a) for a in self.trace[len(other.trace):]]  # type: ignore[misc]
        return merged


def _merge_step(mine: StepRows, theirs: StepRows, rows: torch.Tensor, replaced: torch.Tensor) -> StepRows:
    """One supervision step's trace rows: this pass's for the examples not replaced, the other's for those
    replaced (its rows mapped back to the batch), in example order."""
    keep = ~replaced[mine[0]]
    parts = [torch.cat((a[keep], b)) for a, b in zip(mine, (rows[theirs[0]], *theirs[1:]))]
    order = parts[0].argsort()
    return tuple(p[order] for p in parts)  # type: ignore[return-value]


class _Exits:
    """Every trajectory's newest answer and, once it exits, its figures there (all on the device)."""

    def __init__(self, rows: int, seq_len: int, device: torch.device, hidden: bool) -> None:
        self.answer = torch.zeros((rows, seq_len), dtype=torch.long, device=device)
        self.logit = torch.full((rows,), -torch.inf, device=device)
        self.step = torch.zeros(rows, dtype=torch.long, device=device)
        self.ce = torch.zeros(rows, dtype=torch.float64, device=device)
        self.accuracy = torch.zeros(rows, dtype=torch.float64, device=device)
        self.exact = torch.zeros(rows, dtype=torch.float64, device=device)
        self.hidden_accuracy = torch.zeros(rows, dtype=torch.float64, device=device) if hidden else None

    def add(self, rows: torch.Tensor, sup: int, losses: tuple, halt_logit: torch.Tensor) -> None:
        ce, _, accuracy, exact, hidden_acc = losses
        self.ce[rows], self.accuracy[rows], self.exact[rows] = ce.double(), accuracy.double(), exact.double()
        if hidden_acc is not None and self.hidden_accuracy is not None:
            self.hidden_accuracy[rows] = hidden_acc.double()
        self.logit[rows] = halt_logit.float()
        self.step[rows] = sup + 1


@torch.inference_mode()
def evaluate_trajectories(ev: EvalModel, batch: Batch, totals: dict[str, float], observe: Observer | None,
                          trace: Trace | None, noise: LatentNoise | None) -> int:
    """One batch through the supervision steps as K trajectories per example (after one plain trajectory,
    with ``escalate``), the kept one's figures added to ``totals``; the number of examples scored."""
    if ev.trajectories.escalate:  # progress: the plain pass is the batch's first half, the K pass its second
        heard = ev.on_step
        outcome = _pass(dataclasses.replace(ev, trajectories=Trajectories(),
                                            on_step=heard and (lambda part: heard(part / 2))), batch, None)
        unsure = (~outcome.halted).nonzero().squeeze(1)
        totals[ESCALATED] = totals.get(ESCALATED, 0.0) + len(unsure)
        if len(unsure):
            subset = Batch(*(None if t is None else t[unsure.cpu()] for t in batch))
            outcome = outcome.replace_rows(unsure, _pass(dataclasses.replace(
                ev, on_step=heard and (lambda part: heard(0.5 + part / 2))), subset, noise))
    else:
        outcome = _pass(ev, batch, noise)
    _add_kept(totals, outcome)
    k = outcome.answers.shape[1]
    if observe is not None:
        voters = Batch(*(None if t is None else t.repeat_interleave(k, 0) for t in batch))
        observe(voters, outcome.answers.flatten(0, 1).cpu(), torch.sigmoid(outcome.logits).flatten().cpu())
    if trace is not None:
        trace.start(batch, ev.max_sup)
        for sup, rows in enumerate(outcome.trace):
            if len(rows[0]):
                trace.step(rows[0], sup, *rows[1:])
        trace.trajectories(outcome.answers, outcome.logits, outcome.steps, outcome.chosen)
        trace.finish()
    return len(batch.inputs)


def _pass(ev: EvalModel, batch: Batch, noise: LatentNoise | None) -> _Outcome:
    """The batch as ``ev.trajectories.count`` trajectories per example, to each example's exit."""
    k = ev.trajectories.count
    run = Running.of(ev, batch, k)
    examples, seq_len = batch.inputs.shape
    exits = _Exits(len(run.rows), seq_len, ev.device, batch.hidden is not None)
    steps: list[tuple[torch.Tensor, ...]] = []
    forward_steps = 0
    halted = torch.zeros(examples, dtype=torch.bool, device=ev.device)  # stopped by a trajectory's halting head
    for sup in range(ev.max_sup):
        with ev.autocast():
            out = ev.model(run.inputs, run.y, run.z, run.ids, latent_noise=noise)
        losses = ev.losses(out.logits, run.targets, out.halt_logit, run.hidden)
        answers = out.logits.argmax(-1).t()
        exits.answer[run.rows] = answers
        exiting = exiting_rows(ev, out.halt_logit, sup == ev.max_sup - 1)
        example = run.rows // k
        if ev.halt_in_eval:  # the example halts with its first trajectory whose head says stop
            halting = torch.zeros(examples, dtype=torch.bool, device=ev.device)
            halting[example[halts(out.halt_logit, ev.halt_logit_threshold)]] = True
            halted |= halting
            exiting = exiting | halting[example]
        if ev.trajectories.settle:
            agreed = settled(exits.answer.view(examples, k, seq_len), ev.trajectories.settle)
            exiting = exiting | agreed[example]
        out_rows = exiting.nonzero().squeeze(1)
        exits.add(run.rows[out_rows], sup, tuple(None if t is None else t[out_rows] for t in losses),
                  out.halt_logit[out_rows])
        forward_steps += len(run.rows)
        _, _, accuracy, exact, _ = losses
        steps.append((run.rows, answers, out.halt_logit, exact, accuracy, exiting))
        run.keep(~exiting, out.y, out.z)
        ev.step_done(sup)
        if not len(run.inputs):
            break
    answers, logits = exits.answer.view(examples, k, seq_len), exits.logit.view(examples, k)
    chosen = _kept(ev, answers, logits, halted)
    kept = torch.arange(examples, device=chosen.device) * k + chosen
    is_kept = torch.zeros(len(exits.step), dtype=torch.bool, device=kept.device)
    is_kept[kept] = True
    trace = [(rows[mine] // k, a[mine], h[mine], e[mine], acc[mine], x[mine])
             for rows, a, h, e, acc, x in steps for mine in (is_kept[rows],)]
    return _Outcome(exits.ce[kept], exits.accuracy[kept], exits.exact[kept],
                    None if exits.hidden_accuracy is None else exits.hidden_accuracy[kept], exits.step[kept],
                    answers, logits, exits.step.view(examples, k), chosen, trace, forward_steps, halted)


def _kept(ev: EvalModel, answers: torch.Tensor, logits: torch.Tensor, halted: torch.Tensor) -> torch.Tensor:
    """The trajectory kept for each example (B,): by the eval's ``select``; an example stopped because its
    answers agreed keeps the agreed answer (chosen by vote), one stopped by a halting head the trajectory
    whose head said stop (the most confident)."""
    chosen = choose(answers, logits, ev.trajectories.select)
    if ev.trajectories.settle and ev.trajectories.select != "vote":
        agreed = settled(answers, ev.trajectories.settle)
        chosen = torch.where(agreed, choose(answers, logits, "vote"), chosen)
    return torch.where(halted, choose(answers, logits, "q"), chosen)


def _add_kept(totals: dict[str, float], outcome: _Outcome) -> None:
    """The kept trajectories' figures added to ``totals``, and what all the trajectories cost."""
    add_figures(totals, outcome.ce, outcome.accuracy, outcome.exact, outcome.hidden_accuracy,
                outcome.step.sum().item())
    totals[FORWARD_STEPS] += outcome.forward_steps
