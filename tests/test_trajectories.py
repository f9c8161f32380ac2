"""Test-time compute in the per-batch pass: K trajectories are one batched forward per recursion, the noise is
seeded, halting stops each example at the step its halting logit first passes the threshold, and ``q`` and
``vote`` keep what they should. Real networks where the figure is the network's; a model whose answers and
halting logits are scripted where the test is about the rules applied to them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trm_core.config import ModelConfig
from trm_core.data.base import Batch
from trm_core.evaluate.batch_pass import evaluate_batches
from trm_core.evaluate.eval_model import EvalModel
from trm_core.evaluate.trace import BatchRecord, StepTrace
from trm_core.evaluate.test_time.trajectories import Trajectories, choose, settled
from trm_core.train.halting import halt_logit_threshold
from trm_core.train.model import StepOutput, build_model
from trm_core.train.sample_loss import SampleLoss
from trm_core.train.losses import LOSSES

VOCAB, SEQ = 11, 9


def _network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(dim=16, depth=1, latent_steps=2, refinement_blocks=3, seq_len=SEQ, net="attention",
                      max_supervision_steps=4)
    return build_model(cfg, VOCAB).eval()


def _eval_model(model: object, steps: int = 4, halt: float | None = None,
                trajectories: Trajectories = Trajectories()) -> EvalModel:
    return EvalModel(model, torch.device("cpu"), steps, halt is not None,
                     halt_logit_threshold(halt if halt is not None else 0.5),
                     SampleLoss(LOSSES["softmax"], loss_on_hidden=False), trajectories=trajectories)


def _batch(rows: int = 6, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, VOCAB, (rows, SEQ), generator=g)
    return Batch(inputs, torch.randint(1, VOCAB, (rows, SEQ), generator=g))


def _records(ev: EvalModel, batches: list[Batch]) -> tuple[dict, list[BatchRecord]]:
    records: list[BatchRecord] = []
    totals, _, _ = evaluate_batches(ev, batches, trace=StepTrace(ev.halt_logit_threshold, records.append))
    return totals, records


def test_k_trajectories_are_one_batched_forward_per_recursion() -> None:
    """The network runs T x (n + 1) times per supervision step whatever K is, each time over K x the batch."""
    model = _network()
    seen: list[int] = []
    model.net.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[1]))
    for k in (1, 8):
        seen.clear()
        evaluate_batches(_eval_model(model, trajectories=Trajectories(k, noise=0.1)), [_batch(6)])
        assert len(seen) == 4 * 3 * (2 + 1), k  # supervision steps x T x (n + 1)
        assert set(seen) == {6 * k}, k


def test_k_copies_without_noise_score_as_one_trajectory() -> None:
    """K identical trajectories keep the one answer a single trajectory gives: the same figures, the same
    answer after every step."""
    model = _network()
    plain, plain_records = _records(_eval_model(model), [_batch()])
    copies, copy_records = _records(_eval_model(model, trajectories=Trajectories(5)), [_batch()])
    for name in ("accuracy", "exact", "sup_steps"):
        assert copies[name] == plain[name], name
    assert copies["loss"] == pytest.approx(plain["loss"], rel=1e-6)
    assert copies["forward_steps"] == 5 * 4 * 6 and "forward_steps" not in plain
    for name in ("first", "final", "changes", "exact", "exit_step"):
        assert np.array_equal(getattr(copy_records[0], name), getattr(plain_records[0], name)), name
    assert copy_records[0].trajectory_final.shape == (6, 5, SEQ)
    assert (copy_records[0].trajectory_final == plain_records[0].final[:, None, :]).all()


def test_the_noise_is_seeded() -> None:
    model = _network()

    def finals(seed: int) -> np.ndarray:
        _, records = _records(_eval_model(model, trajectories=Trajectories(4, noise=2.0, seed=seed)), [_batch()])
        return records[0].trajectory_final

    first, again, other = finals(3), finals(3), finals(4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not all(np.array_equal(first[:, 0], first[:, k]) for k in range(1, 4))  # the trajectories differ


class ScriptedModel(torch.nn.Module):
    """Answers and halting logits read from a script: row r's tokens start with r, and after supervision step s
    it answers ``answers[r][s]`` (one token, repeated) with halting logit ``halts[r][s]``; its K trajectories
    follow ``answers[r][s][k]``, ``halts[r][s][k]`` when those are lists."""

    def __init__(self, answers: list, halts: list) -> None:
        super().__init__()
        self.answers, self.halts = answers, halts

    def initial_state(self, batch: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        step = torch.zeros(1, batch, 1)
        return step, torch.arange(batch, dtype=torch.float32)[None, :, None]  # y: the step, z: the trajectory row

    def forward(self, tokens: torch.Tensor, y: torch.Tensor, z: torch.Tensor, puzzle_ids: object = None,
                latent_noise: object = None) -> StepOutput:
        rows, step = tokens[:, 0].tolist(), int(y[0, 0, 0])
        k = len(tokens) // len(set(rows))
        picks = [int(z[0, i, 0]) % k for i in range(len(rows))]

        def at(table: list, r: int, pick: int) -> float:
            cell = table[r][step]
            return cell[pick] if isinstance(cell, list) else cell

        answer = torch.tensor([at(self.answers, r, p) for r, p in zip(rows, picks)])
        logits = torch.nn.functional.one_hot(answer, VOCAB).float()[None].expand(tokens.shape[1], -1, -1) * 10
        halt = torch.tensor([at(self.halts, r, p) for r, p in zip(rows, picks)], dtype=torch.float32)
        return StepOutput(y + 1, z, logits, halt)


def _scripted_batch(rows: int) -> Batch:
    inputs = torch.arange(rows)[:, None].expand(rows, SEQ).clone()
    return Batch(inputs, torch.full((rows, SEQ), 5))


def test_halting_stops_each_example_at_the_step_its_logit_first_passes_the_threshold() -> None:
    halts = [[-1.0, 0.5, 2.0, 3.0],   # first above 0 at step 2
             [-3.0, -2.0, -1.0, 0.0],  # never strictly above 0: runs all 4
             [0.1, -5.0, 5.0, 5.0]]    # at step 1
    model = ScriptedModel([[5, 5, 5, 5]] * 3, halts)
    _, records = _records(_eval_model(model, halt=0.5), [_scripted_batch(3)])
    assert records[0].exit_step.tolist() == [2, 4, 1]
    _, late = _records(_eval_model(model, halt=0.85), [_scripted_batch(3)])  # logit 1.73
    assert late[0].exit_step.tolist() == [3, 4, 3]


def test_q_keeps_the_most_confident_trajectory_and_vote_the_most_common_answer() -> None:
    answers = torch.tensor([[[1, 1], [2, 2], [2, 2], [3, 3]],
                            [[4, 4], [4, 4], [6, 6], [6, 6]]])
    confidence = torch.tensor([[0.1, 0.2, 0.3, 0.9],
                               [0.5, 0.1, 0.2, 0.3]])
    assert choose(answers, confidence, "q").tolist() == [3, 0]
    # example 0: answer 2 has two votes, its more confident voter is kept; example 1: two answers of two votes,
    # the one whose best voter is more confident (4, by 0.5) wins
    assert choose(answers, confidence, "vote").tolist() == [2, 0]
    assert settled(answers, 2).tolist() == [True, True] and settled(answers, 3).tolist() == [False, False]


def test_the_kept_trajectory_is_scored_and_settling_stops_an_example_early() -> None:
    """Scripted trajectories: the right answer (5) only on the trajectory the rule should keep."""
    right, wrong = 5, 7
    # one example, 3 trajectories; the confident one is right; two wrong ones agree with each other
    answers = [[[wrong, wrong, right]] * 4]
    halts = [[[0.0, 0.1, 3.0]] * 4]
    model = ScriptedModel(answers, halts)
    by_q, _ = _records(_eval_model(model, trajectories=Trajectories(3, select="q")), [_scripted_batch(1)])
    by_vote, _ = _records(_eval_model(model, trajectories=Trajectories(3, select="vote")), [_scripted_batch(1)])
    assert by_q["exact"] == 1 and by_vote["exact"] == 0
    settling, records = _records(_eval_model(model, trajectories=Trajectories(3, settle=2)), [_scripted_batch(1)])
    assert records[0].exit_step.tolist() == [1] and settling["forward_steps"] == 3  # stopped after step 1
    assert settling["exact"] == 0  # the agreed answer is kept, whatever q says


def test_with_halting_an_example_stops_with_its_first_sure_trajectory() -> None:
    """Three trajectories; the second's head says stop at step 2 with the right answer, the others never: the
    example stops at step 2 and keeps the second, whatever the vote says."""
    right, wrong = 5, 7
    answers = [[[wrong, right, wrong]] * 4]
    halts = [[[-2.0, -1.0, -3.0], [-2.0, 1.5, -3.0], [4.0, 4.0, 4.0], [4.0, 4.0, 4.0]]]
    model = ScriptedModel(answers, halts)
    for select in ("q", "vote"):
        totals, records = _records(_eval_model(model, halt=0.5, trajectories=Trajectories(3, select=select)),
                                   [_scripted_batch(1)])
        assert records[0].exit_step.tolist() == [2] and records[0].chosen.tolist() == [1], select
        assert totals["exact"] == 1 and totals["forward_steps"] == 3 * 2, select


def test_escalating_runs_the_trajectories_only_where_the_plain_one_was_never_sure() -> None:
    """Example 0's plain trajectory is sure at step 1; example 1's never is, so only it runs the 3 trajectories,
    the second of which is sure (and right) at step 2."""
    right, wrong = 5, 7
    answers = [[right] * 4, [[wrong, right, wrong]] * 4]
    halts = [[2.0] * 4, [[-1.0, -1.0, -1.0], [-1.0, 3.0, -1.0], [-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]]]
    model = ScriptedModel(answers, halts)
    totals, records = _records(_eval_model(model, halt=0.5, trajectories=Trajectories(3, escalate=True)),
                               [_scripted_batch(2)])
    record = records[0]
    assert totals["exact"] == 2 and record.exit_step.tolist() == [1, 2] and record.chosen.tolist() == [0, 1]
    assert totals["forward_steps"] == (2 + 1 + 1 + 1) + 3 * 2  # the plain round, then 3 rows for 2 steps
    assert (record.trajectory_final[0] == right).all()  # the plain answer stands for all 3
    assert record.final.tolist() == [[right] * SEQ, [right] * SEQ]
