"""The user guide's Fidelity table, row by row, against the reference's own source: each reference function
below is a transcription of SamsungSAILMontreal/TinyRecursiveModels at HEAD e7b6871 (its code files are all
from commit 8120f2b), cited by file and line, never our own restatement of what it does. Rows tested elsewhere
name their test in the table (the optimizer: ``test_adam_atan2_kernel.py``; halting: ``test_halting_rule.py``;
the sampler and the step count: ``test_packing.py``; ARC's separate evals: ``test_arc_ensemble.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trm_core.config import resolve
from trm_core.data.base import IGNORE, Batch
from trm_core.train.carry import Carry
from trm_core.train.losses import stablemax_cross_entropy
from trm_core.train.model import build_model
from trm_core.train.nets.layers import trunc_normal_
from trm_core.train.puzzle_emb import PuzzleEmbedding
from trm_core.train.sample_loss import SampleLoss
from trm_core.train.update.ema import EMA
from trm_core.train.update.schedule import learning_rate

REF_IGNORE = -100  # models/losses.py line 8: IGNORE_LABEL_ID = -100


# -- loss: models/losses.py ---------------------------------------------------------------------------------

def ref_s(x: torch.Tensor, epsilon: float = 1e-30) -> torch.Tensor:
    """losses.py lines 11-16."""
    return torch.where(x < 0, 1 / (1 - x + epsilon), x + 1)


def ref_log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """losses.py lines 19-21."""
    s_x = ref_s(x)
    return torch.log(s_x / torch.sum(s_x, dim=dim, keepdim=True))


def ref_stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """losses.py lines 24-32 (valid_mask from ignore_index)."""
    logprobs = ref_log_stablemax(logits.to(torch.float64), dim=-1)
    valid_mask = labels != REF_IGNORE
    transformed_labels = torch.where(valid_mask, labels, 0)
    prediction_logprobs = torch.gather(logprobs, index=transformed_labels.to(torch.long).unsqueeze(-1),
                                       dim=-1).squeeze(-1)
    return -torch.where(valid_mask, prediction_logprobs, 0)


def ref_act_loss(logits: torch.Tensor, labels: torch.Tensor, q_halt_logits: torch.Tensor, batch: int) -> torch.Tensor:
    """losses.py lines 66-71 (mask, counts, seq_is_correct), 87-88 (lm_loss, q_halt_loss), 102 (the sum, with
    no_ACT_continue: q_continue_loss = 0, lines 94-96), then pretrain.py line 305's 1 / global_batch_size."""
    mask = labels != REF_IGNORE
    loss_counts = mask.sum(-1)
    loss_divisor = loss_counts.clamp_min(1).unsqueeze(-1)
    is_correct = mask & (torch.argmax(logits, dim=-1) == labels)
    seq_is_correct = is_correct.sum(-1) == loss_counts
    lm_loss = (ref_stablemax_cross_entropy(logits, labels) / loss_divisor).sum()
    q_halt_loss = F.binary_cross_entropy_with_logits(q_halt_logits, seq_is_correct.to(q_halt_logits.dtype),
                                                     reduction="sum")
    return (1 / batch) * (lm_loss + 0.5 * (q_halt_loss + 0))


def test_loss_is_the_references_stablemax_act_loss() -> None:
    gen = torch.Generator().manual_seed(0)
    batch, seq, vocab = 6, 9, 11
    logits = torch.randn(batch, seq, vocab, generator=gen) * 4
    labels = torch.randint(0, vocab, (batch, seq), generator=gen)
    labels[0, :4] = REF_IGNORE
    labels[1] = logits[1].argmax(-1)  # one sample fully right: its halting target is 1
    q = torch.randn(batch, generator=gen)
    ours_labels = torch.where(labels == REF_IGNORE, IGNORE, labels)
    # per position, exactly
    torch.testing.assert_close(stablemax_cross_entropy(logits, ours_labels),
                               ref_stablemax_cross_entropy(logits, labels), rtol=0, atol=0)
    # the step's loss at the paper presets' halting weight (model.halt_loss_weight = 0.5) over a full batch
    ce, halt, _, exact, _ = SampleLoss(stablemax_cross_entropy, loss_on_hidden=False)(
        logits.transpose(0, 1), ours_labels, q)
    assert exact.tolist() == [False, True, False, False, False, False]
    ours = ((ce.double() + 0.5 * halt.double()).sum() / batch).item()
    assert ours == pytest.approx(ref_act_loss(logits, labels, q, batch).item(), rel=1e-6)


# -- schedule: pretrain.py ----------------------------------------------------------------------------------

def ref_cosine_schedule_with_warmup_lr_lambda(current_step: int, *, base_lr: float, num_warmup_steps: int,
                                              num_training_steps: int, min_ratio: float = 0.0,
                                              num_cycles: float = 0.5) -> float:
    """pretrain.py lines 207-214."""
    if current_step < num_warmup_steps:
        return base_lr * float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    return base_lr * (min_ratio + max(0.0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))))


def test_schedule_is_the_references_at_every_update_with_or_without_a_decay() -> None:
    """The reference counts its step up before computing the rate (pretrain.py line 290, then 316): update k
    (1-based) uses current_step = k; ours takes the 0-based step k - 1 and gives the same rate, for the paper's
    presets (2,000 warm-up steps, lr_min_ratio 1.0: cfg_pretrain.yaml lines 24-26) and with a decay."""
    total, warmup = 65_104, 2000
    for min_ratio in (1.0, 0.1):
        for k in list(range(1, 2005)) + list(range(30_000, 30_010)) + [total - 1, total]:
            ref = ref_cosine_schedule_with_warmup_lr_lambda(k, base_lr=1e-4, num_warmup_steps=warmup,
                                                            num_training_steps=total, min_ratio=min_ratio)
            assert learning_rate(k - 1, peak=1e-4, warmup_steps=warmup, total_steps=total, min_ratio=min_ratio) == \
                pytest.approx(ref, rel=1e-12), (min_ratio, k)


def test_the_whole_schedule_of_an_arc_shaped_run_is_the_references() -> None:
    """An ARC-shaped set (groups of puzzles with uneven example counts) at batch 36: the run trains the batches
    the reference's loop yields, fewer than its total_steps formula (pretrain.py line 219), and the cosine runs over
    that formula as the reference's does (compute_lr, lines 265-271, num_training_steps=train_state.total_steps):
    the rate of every update trained is the reference's, with a decay to 0.1."""
    from trm_core.data.packing import PackedOrder
    from trm_core.worker.training_run import schedule_steps_for, total_steps_for

    rng = np.random.default_rng(0)
    counts = rng.integers(2, 9, size=240)  # examples of each puzzle: 2 to 8, as ARC tasks' demonstrations
    puzzle_examples = np.concatenate([[0], np.cumsum(counts)])
    group_puzzles = np.arange(0, 241, 3)  # 80 groups of 3 puzzles (an original and two disguises)
    epochs, batch, warmup = 60, 36, 50
    order = PackedOrder(group_puzzles, puzzle_examples, batch, seed=0, take=lambda rows, puzzles: None)
    # the reference's total_steps, transcribed: its dataset.json's total_groups and mean_puzzle_examples
    total_groups, mean_puzzle_examples = 80, float(puzzle_examples[-1]) / 240
    formula = int(epochs * total_groups * mean_puzzle_examples / batch)
    cfg = resolve(env={}, sets=[f"train.epochs={epochs}", f"train.batch_size={batch}", "train.max_steps=0",
                                "train.micro_batch_size=0"])
    trained, horizon = total_steps_for(cfg, order), schedule_steps_for(cfg, order)
    assert horizon == formula and trained < formula, (trained, formula)
    for k in range(1, trained + 1):
        ref = ref_cosine_schedule_with_warmup_lr_lambda(k, base_lr=3e-4, num_warmup_steps=warmup,
                                                        num_training_steps=formula, min_ratio=0.1)
        assert learning_rate(k - 1, peak=3e-4, warmup_steps=warmup, total_steps=horizon, min_ratio=0.1) == \
            pytest.approx(ref, rel=1e-12), k


# -- puzzle embeddings: models/sparse_embedding.py ----------------------------------------------------------

def ref_sign_sgd_update(weights: torch.Tensor, all_ids: torch.Tensor, all_weights_grad: torch.Tensor, lr: float,
                        weight_decay: float) -> None:
    """sparse_embedding.py lines 121-132 (one rank: the all-gather is the identity)."""
    grad_ids, inv = all_ids.unique(return_inverse=True)
    grad = torch.zeros((grad_ids.shape[0], weights.shape[1]), dtype=all_weights_grad.dtype)
    grad.scatter_add_(0, inv.unsqueeze(-1).expand(-1, weights.shape[1]), all_weights_grad)
    p = weights[grad_ids]
    p.mul_(1.0 - lr * weight_decay).add_(torch.sign(grad), alpha=-lr)
    weights[grad_ids] = p


def test_puzzle_embeddings_move_by_the_references_sign_sgd() -> None:
    gen = torch.Generator().manual_seed(1)
    table = torch.randn(10, 4, generator=gen)
    ids = torch.tensor([3, 7, 3, 0, 7, 7])  # repeated ids: their gradients are summed before the sign
    grads = torch.randn(6, 4, generator=gen)
    ours = PuzzleEmbedding(10, 4)
    ours.weights.copy_(table)
    ours._sign_sgd(ids, grads, lr=1e-2, weight_decay=0.1)
    ref = table.clone()
    ref_sign_sgd_update(ref, ids, grads, lr=1e-2, weight_decay=0.1)
    assert torch.equal(ours.weights, ref)


# -- EMA: models/ema.py -------------------------------------------------------------------------------------

class RefEMAHelper:
    """ema.py lines 5-21: a shadow of every parameter that requires grad (lines 12-14), updated as
    ``(1 - mu) * param + mu * shadow`` (line 21); buffers are not averaged."""

    def __init__(self, mu: float = 0.999) -> None:
        self.mu, self.shadow = mu, {}

    def register(self, module: torch.nn.Module) -> None:
        for name, param in module.named_parameters():
            if param.requires_grad:
                self.shadow[name] = param.data.clone()

    def update(self, module: torch.nn.Module) -> None:
        for name, param in module.named_parameters():
            if param.requires_grad:
                self.shadow[name].data = (1. - self.mu) * param.data + self.mu * self.shadow[name].data


def test_the_ema_is_the_references_on_parameters_and_shares_the_buffers() -> None:
    cfg = resolve(env={}, sets=["model.net='attention'", "model.num_heads=2", "model.dim=16", "model.depth=1",
                                "model.seq_len=8", "model.puzzle_emb_len=2", "train.device='cpu'"])
    model = build_model(cfg.model, vocab_size=6, num_puzzle_ids=5)
    ours = EMA(model, 0.999, warmup=False)
    ref = RefEMAHelper(0.999)
    ref.register(model)
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
        ours.update()
        ref.update(model)
    shadow = dict(ours.model.named_parameters())
    assert set(shadow) == set(ref.shadow)
    for name, value in ref.shadow.items():
        torch.testing.assert_close(shadow[name], value, rtol=1e-6, atol=1e-7)
    with torch.no_grad():  # the puzzle-embedding table and the initial states are buffers: one copy, shared
        model.puzzle_emb.weights.add_(1.0)
    assert torch.equal(ours.model.puzzle_emb.weights, model.puzzle_emb.weights)


# -- init: models/common.py, models/layers.py, models/recursive_reasoning/trm.py ----------------------------

def ref_comp_std(std: float, lower: float = -2.0, upper: float = 2.0) -> float:
    """common.py lines 17-25, verbatim (its pdf_u is computed at ``lower`` and pdf_l at ``upper``: the same at
    a symmetric cut): the std before the cut that gives ``std`` after it."""
    sqrt2 = math.sqrt(2)
    a = math.erf(lower / sqrt2)
    b = math.erf(upper / sqrt2)
    z = (b - a) / 2
    c = (2 * math.pi) ** -0.5
    pdf_u = c * math.exp(-0.5 * lower ** 2)
    pdf_l = c * math.exp(-0.5 * upper ** 2)
    return std / math.sqrt(1 - (upper * pdf_u - lower * pdf_l) / z - ((pdf_u - pdf_l) / z) ** 2)


def test_init_is_the_references_truncated_normal_and_halting_head() -> None:
    """common.py lines 7-30: values cut at +-2 of the pre-cut std ``comp_std`` (line 30's clip), whose cut
    distribution has std ``std``; layers.py lines 50-57: LeCun std 1/sqrt(fan_in), zero bias; trm.py lines
    156-160: the halting head's weight zero and its bias -5."""
    std = 0.125
    values = trunc_normal_(torch.empty(400_000), std=std, bound=2.0)
    bound = 2.0 * ref_comp_std(std)
    assert values.abs().max().item() <= bound * (1 + 1e-6) and values.abs().max().item() > 0.99 * bound
    assert values.std().item() == pytest.approx(std, rel=0.01)
    cfg = resolve(env={}, sets=["model.net='attention'", "model.num_heads=2", "model.dim=16", "model.depth=1",
                                "model.seq_len=8", "train.device='cpu'"])
    model = build_model(cfg.model, vocab_size=6, num_puzzle_ids=1)
    assert torch.equal(model.q_head.weight, torch.zeros_like(model.q_head.weight))
    assert torch.equal(model.q_head.bias, torch.full_like(model.q_head.bias, -5.0))


# -- carry: models/recursive_reasoning/trm.py ---------------------------------------------------------------

def test_a_halted_slot_takes_its_row_of_the_next_batch() -> None:
    """trm.py lines 252-256: ``new_steps = torch.where(carry.halted, 0, carry.steps)`` and each data field
    ``torch.where(carry.halted.view(...), batch[k], v)``; lines 192-193: the halted rows' states restart from
    H_init / L_init."""
    slots, seq, dim = 5, 4, 3
    old = Batch(torch.arange(slots * seq).view(slots, seq), torch.zeros(slots, seq, dtype=torch.long),
                puzzle_ids=torch.arange(slots))
    new = Batch(100 + torch.arange(slots * seq).view(slots, seq), torch.ones(slots, seq, dtype=torch.long),
                puzzle_ids=10 + torch.arange(slots))
    y = torch.randn(seq, slots, dim)
    carry = Carry.empty(old, y, y)
    carry.halted = torch.tensor([True, False, True, False, False])
    carry.steps = torch.tensor([3, 1, 16, 2, 5])
    h_init = torch.randn(dim)
    got_y, _ = carry.admit(new, h_init.expand(seq, slots, dim), h_init.expand(seq, slots, dim))
    halted = torch.tensor([True, False, True, False, False])
    ref = {k: torch.where(halted.view((-1,) + (1,) * (getattr(new, k).ndim - 1)), getattr(new, k), getattr(old, k))
           for k in ("inputs", "targets", "puzzle_ids")}
    assert torch.equal(carry.inputs, ref["inputs"]) and torch.equal(carry.targets, ref["targets"])
    assert torch.equal(carry.puzzle_ids, ref["puzzle_ids"])
    assert torch.equal(carry.steps, torch.where(halted, 0, torch.tensor([3, 1, 16, 2, 5])))
    ref_y = torch.where(halted.view(1, -1, 1), h_init, y)
    assert torch.equal(got_y, ref_y)


# -- ARC voting: evaluators/arc.py --------------------------------------------------------------------------

def ref_rank(preds: list[tuple[str, float]]) -> list[str]:
    """arc.py lines 127-141: per answer hash [count, summed q], q divided by the count, sorted by the list
    (count, then mean q) in descending order; Python's stable sort keeps first-seen order on full ties."""
    p_map: dict[str, list] = {}
    for h, q in preds:
        p_map.setdefault(h, [0, 0])
        p_map[h][0] += 1
        p_map[h][1] += q
    for h, stats in p_map.items():
        stats[1] /= stats[0]
    return [h for h, _ in sorted(p_map.items(), key=lambda kv: kv[1], reverse=True)]


def test_arc_answers_rank_as_the_references_votes_then_mean_confidence() -> None:
    from trm_core.evaluate.arc.vote import ArcVoting

    grids = {name: np.full((1, 1), k + 1, dtype=np.uint8) for k, name in enumerate("abcd")}
    voting = ArcVoting(identifiers=["<blank>", "t0"], solutions={"t0": []})
    # four answers: b and c tie on votes and are split by mean confidence; d has one vote at high confidence
    votes = [("a", 0.2), ("b", 0.9), ("c", 0.4), ("b", 0.1), ("a", 0.3), ("c", 0.8), ("a", 0.1), ("d", 0.99)]
    canvas = np.zeros((1, 900), dtype=np.int64)
    canvas[0, 0], canvas[0, 1], canvas[0, 30] = 3, 1, 1  # a one-cell input, closed by end-of-grid marks
    for name, q in votes:
        pred = canvas.copy()
        pred[0, 0] = int(grids[name][0, 0]) + 2
        voting.add(np.array([1]), canvas, pred, np.array([q]))
    from trm_core.evaluate.arc.vote import grid_hash
    from trm_core.prep.arc import crop
    input_hash = grid_hash(crop(canvas[0].astype(np.uint8)))
    ours = [answer.grid for _, answer in voting.ranked("t0", input_hash)]
    expected = ref_rank([(name, q) for name, q in votes])
    assert ours == [grids[name].tolist() for name in expected]
    assert expected == ["a", "c", "b", "d"]


def test_eval_runs_every_supervision_step_as_the_reference() -> None:
    """trm.py lines 275-278: halting only ``if self.training``; at eval every sample runs halt_max_steps
    (our ``model.halt_in_eval = false``, the default and the paper presets')."""
    for preset in ("sudoku-paper", "maze-paper", "arc-paper"):
        cfg = resolve(env={}, preset=preset, sets=["train.device='cpu'"])
        assert cfg.model.halt_in_eval is False and cfg.model.max_supervision_steps == 16
        assert cfg.model.halt_threshold == 0.5 and cfg.model.halt_exploration == 0.1  # trm.yaml lines 6-7
