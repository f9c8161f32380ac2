"""One eval batch run as K trajectories per example (``evaluate.test_time.trajectories``): the rows repeated K times, one
forward per supervision step over all of them, an example's trajectories exiting together at the last step,
as soon as one of them halts (``--halt``: the first trajectory whose head is sure answers, as a deployed
model would), or once M of its answers agree (``settle``); then one trajectory kept per example and only it
scored.

The figures are the kept trajectories', so the eval's fields mean what they always meant; ``forward_steps``
adds what the example cost: the supervision steps run by all its trajectories. A ``Trace`` hears the kept
trajectory's steps as if it had run alone, then every trajectory's answer at exit (``Trace.trajectories``).
"""

from __future__ import annotations

import torch

from trm_core.data.base import Batch
from trm_core.evaluate.eval_model import EvalModel, Observer, Running, Trace, exiting_rows
from trm_core.evaluate.test_time.trajectories import LatentNoise, choose, settled
from trm_core.train.halting import halts

FORWARD_STEPS = "forward_steps"  # an eval's figure: supervision steps run per example, all its trajectories


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
    """One batch through the supervision steps as K trajectories per example, the kept one's figures added to
    ``totals``; the number of examples scored."""
    k = ev.trajectories.count
    run = Running.of(ev, batch, k)
    examples, seq_len = batch.inputs.shape
    exits = _Exits(len(run.rows), seq_len, ev.device, batch.hidden is not None)
    steps: list[tuple[torch.Tensor, ...]] = []  # what the trace replays for the kept trajectories
    forward_steps = 0
    halted = torch.zeros(examples, dtype=torch.bool, device=ev.device)  # stopped by a trajectory's halting head
    for sup in range(ev.max_sup):
        with ev.autocast():
            out = ev.model(run.inputs, run.y, run.z, run.ids, latent_noise=noise)
        losses = ev.losses(out.logits, run.targets, out.halt_logit, run.hidden)
        answers = out.logits.argmax(-1).t()
        exits.answer[run.rows] = answers
        exiting = exiting_rows(ev, out.halt_logit, sup == ev.max_sup - 1)
        if ev.halt_in_eval:  # the example halts with its first trajectory whose head says stop
            example = run.rows // k
            halting = torch.zeros(examples, dtype=torch.bool, device=ev.device)
            halting[example[halts(out.halt_logit, ev.halt_logit_threshold)]] = True
            halted |= halting
            exiting = exiting | halting[example]
        if ev.trajectories.settle:
            agreed = settled(exits.answer.view(examples, k, seq_len), ev.trajectories.settle)
            exiting = exiting | agreed[run.rows // k]
        out_rows = exiting.nonzero().squeeze(1)
        exits.add(run.rows[out_rows], sup, tuple(None if t is None else t[out_rows] for t in losses),
                  out.halt_logit[out_rows])
        forward_steps += len(run.rows)
        if trace is not None:
            _, _, accuracy, exact, _ = losses
            steps.append((run.rows, answers, out.halt_logit, exact, accuracy, exiting))
        run.keep(~exiting, out.y, out.z)
        if not len(run.inputs):
            break
    kept = _kept(ev, exits, examples, k, seq_len, halted)
    _add_kept(totals, exits, kept, forward_steps)
    if observe is not None:
        voters = Batch(*(None if t is None else t.repeat_interleave(k, 0) for t in batch))
        observe(voters, exits.answer.cpu(), torch.sigmoid(exits.logit).cpu())
    if trace is not None:
        _replay(trace, batch, ev.max_sup, steps, kept, k, exits)
    return examples


def _kept(ev: EvalModel, exits: _Exits, examples: int, k: int, seq_len: int, halted: torch.Tensor) -> torch.Tensor:
    """The trajectory row kept for each example (B,): by the eval's ``select``; an example stopped because its
    answers agreed keeps the agreed answer (chosen by vote), one stopped by a halting head the trajectory
    whose head said stop (the most confident)."""
    answers, logits = exits.answer.view(examples, k, seq_len), exits.logit.view(examples, k)
    chosen = choose(answers, logits, ev.trajectories.select)
    if ev.trajectories.settle and ev.trajectories.select != "vote":
        agreed = settled(answers, ev.trajectories.settle)
        chosen = torch.where(agreed, choose(answers, logits, "vote"), chosen)
    chosen = torch.where(halted, choose(answers, logits, "q"), chosen)
    return torch.arange(examples, device=chosen.device) * k + chosen


def _add_kept(totals: dict[str, float], exits: _Exits, kept: torch.Tensor, forward_steps: int) -> None:
    """The kept trajectories' figures summed into ``totals`` (in float64, as a single trajectory's are)."""
    totals["loss"] += exits.ce[kept].sum().item()
    totals["accuracy"] += exits.accuracy[kept].sum().item()
    totals["exact"] += exits.exact[kept].sum().item()
    if exits.hidden_accuracy is not None:
        totals["masked_accuracy"] += exits.hidden_accuracy[kept].sum().item()
    totals["sup_steps"] += exits.step[kept].sum().item()
    totals[FORWARD_STEPS] += forward_steps


def _replay(trace: Trace, batch: Batch, max_sup: int, steps: list[tuple[torch.Tensor, ...]],
            kept: torch.Tensor, k: int, exits: _Exits) -> None:
    """The trace hears the kept trajectory of each example step by step, as if it had run alone, then every
    trajectory's answer at exit."""
    is_kept = torch.zeros(len(exits.step), dtype=torch.bool, device=kept.device)
    is_kept[kept] = True
    trace.start(batch, max_sup)
    for sup, (rows, answers, halt_logit, exact, accuracy, exiting) in enumerate(steps):
        mine = is_kept[rows]
        if mine.any():
            trace.step(rows[mine] // k, sup, answers[mine], halt_logit[mine], exact[mine], accuracy[mine],
                       exiting[mine])
    examples = len(kept)
    trace.trajectories(exits.answer.view(examples, k, -1), exits.logit.view(examples, k),
                       exits.step.view(examples, k), kept - torch.arange(examples, device=kept.device) * k)
    trace.finish()
