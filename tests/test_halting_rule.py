"""One halting rule, everywhere a halting head is read: the refill step, the shrink step, eval with halting,
and the eval's trace all stop a sample when its halting logit is strictly above the threshold, as the
reference does (TinyRecursiveModels ``models/recursive_reasoning/trm.py`` line 281:
``halted = halted | (q_halt_logits > 0)``). A head whose weights and bias are zero gives a logit of exactly 0:
at ``model.halt_threshold = 0.5`` (logit 0) no sample halts anywhere; a bias a hair above 0 halts every one
at its first step, so each check can fail."""

from __future__ import annotations

import pytest
import torch

from trm_core.config import resolve
from trm_core.data.base import Batch
from trm_core.evaluate.trace import StepTrace
from trm_core.evaluate.batch_pass import evaluate_batches
from trm_core.evaluate.eval_model import EvalModel
from trm_core.train.trainer import Trainer

SLOTS, SEQ, VOCAB, MAX_SUP = 4, 8, 6, 3


def trainer(carry: str, head_bias: float) -> Trainer:
    cfg = resolve(env={}, sets=["model.net='attention'", "model.num_heads=2", "model.dim=16", "model.depth=1",
                                f"model.seq_len={SEQ}", "model.latent_steps=1", "model.refinement_blocks=1",
                                f"model.max_supervision_steps={MAX_SUP}", f"train.carry='{carry}'",
                                f"train.batch_size={SLOTS}", "train.device='cpu'", "train.warmup_steps=0",
                                "train.ema_decay=0", "model.halt_threshold=0.5", "model.halt_exploration=0.0",
                                "model.halt_in_eval=true"])
    tr = Trainer(cfg, VOCAB, total_steps=10, num_puzzle_ids=1)
    head = tr.model.q_head if hasattr(tr.model, "q_head") else tr.model.to_halt
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[0] = head_bias
    return tr


def batch() -> Batch:
    gen = torch.Generator().manual_seed(0)
    return Batch(torch.randint(0, VOCAB, (SLOTS, SEQ), generator=gen), torch.randint(0, VOCAB, (SLOTS, SEQ), generator=gen))


@pytest.mark.parametrize("bias, halts_at_once", [(0.0, False), (1e-6, True)])
def test_refill_halts_only_above_the_threshold(bias: float, halts_at_once: bool) -> None:
    assert trainer("refill", bias).train_step(batch()).completed == (SLOTS if halts_at_once else 0)


@pytest.mark.parametrize("bias, halts_at_once", [(0.0, False), (1e-6, True)])
def test_shrink_halts_only_above_the_threshold(bias: float, halts_at_once: bool) -> None:
    assert trainer("shrink", bias).train_step(batch()).sup_steps == (1 if halts_at_once else MAX_SUP)


@pytest.mark.parametrize("bias, halts_at_once", [(0.0, False), (1e-6, True)])
def test_eval_and_its_trace_halt_only_above_the_threshold(bias: float, halts_at_once: bool) -> None:
    tr = trainer("refill", bias)
    records = []
    totals, count, _ = evaluate_batches(EvalModel.of_trainer(tr), [batch()],
                                        trace=StepTrace(tr.halt_logit_threshold, records.append))
    expected = 1 if halts_at_once else MAX_SUP
    assert count == SLOTS and totals["sup_steps"] == SLOTS * expected
    assert records[0].exit_step.tolist() == [expected] * SLOTS
    assert records[0].halt_fired.tolist() == [halts_at_once] * SLOTS
    if halts_at_once:
        assert records[0].halt_step.tolist() == [1] * SLOTS


def test_halting_precision_counts_only_the_decisions_the_head_made() -> None:
    """TinyRecursiveModels issue #28: its q_halt_accuracy (models/losses.py line 81,
    ``((q_halt_logits >= 0) == seq_is_correct)``) is 1.0 for a head that never fires on a model that never
    solves anything. Ours has nothing to score there (None), and scores a fired head by the answer it
    stopped on."""
    import numpy as np

    from trm_core.evaluate.session import halting_figures

    never_right = np.zeros((5, 3), dtype=bool)
    never_fired = np.zeros(5, dtype=bool)
    reference_accuracy = float(((np.full(5, -5.0) >= 0) == never_right[:, -1]).mean())
    assert reference_accuracy == 1.0  # the reference's figure, transcribed: "all right"
    assert halting_figures(never_right, np.full(5, 3), never_fired) == {"halt_fired": 0.0, "halt_precision": None}
    exact = np.array([[False, True, True], [True, True, True], [False, False, False], [False, False, True]])
    fired = np.array([True, True, True, False])
    halt_step = np.array([2, 1, 1, 3])  # row 0 right at step 2, row 1 right at 1, row 2 wrong at 1
    assert halting_figures(exact, halt_step, fired) == {"halt_fired": 0.75, "halt_precision": round(2 / 3, 4)}


def test_a_halting_target_that_stays_zero_for_thousands_of_steps_stays_finite() -> None:
    """TinyRecursiveModels issue #28: while no sample is ever right, the halting target is all zero, the
    halting logits are driven towards minus infinity and the reference's halting BCE ends in NaN gradients.
    Here: 2,000 refill steps on answers no model can get right (fresh random labels every step), the halting
    loss at weight 10, AdamATan2 at lr 0.1 with no clipping, so the head runs far into that regime; every
    step's loss and gradient norm stays finite (the non-finite watch, read at the end, names the first step
    that was not), and so do the weights."""
    cfg = resolve(env={}, sets=["model.net='attention'", "model.num_heads=2", "model.dim=16", "model.depth=1",
                                f"model.seq_len={SEQ}", "model.latent_steps=1", "model.refinement_blocks=1",
                                "model.max_supervision_steps=4", "train.carry='refill'", "train.batch_size=8",
                                "train.device='cpu'", "train.warmup_steps=0", "train.ema_decay=0",
                                "train.optimizer='adam_atan2'", "train.learning_rate=0.1", "train.weight_decay=0",
                                "train.min_lr_ratio=1.0", "train.grad_clip=0", "model.halt_loss_weight=10.0",
                                "model.halt_exploration=0.0"])
    tr = Trainer(cfg, VOCAB, total_steps=100_000, num_puzzle_ids=1)
    for step in range(1, 2001):
        gen = torch.Generator().manual_seed(step)
        tr.queue_step(Batch(torch.randint(0, VOCAB, (8, SEQ), generator=gen),
                            torch.randint(0, VOCAB, (8, SEQ), generator=gen)))
    last = tr.read_metrics()  # raises NonFiniteLoss naming the first non-finite step, if any
    assert last.exact == 0.0 and torch.isfinite(torch.tensor([last.loss, last.halt_loss, last.grad_norm])).all()
    with torch.no_grad():
        y, z = tr.model.initial_state(8, SEQ)
        halt_logit = tr.model(tr.carry.inputs, y, z, None).halt_logit
    assert halt_logit.max().item() < -20  # deep in the regime: the head says "never halt" with certainty
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())
