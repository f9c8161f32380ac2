"""The reference's carry (``train.carry = "refill"``) and puzzle embeddings: slots refilled, no sample past its
supervision steps, only the batch's embedding rows trained, and a stop and resume mid-carry bit-identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trm_core.config import resolve
from trm_core.data.base import Batch
from trm_core.prep.puzzle_format import PuzzleMetadata, write_split
from trm_core.train.trainer import Trainer

from helpers import events, run_worker

SLOTS, SEQ, VOCAB = 6, 8, 6


def trainer(*sets: str, max_sup: int = 3) -> Trainer:
    cfg = resolve(env={}, sets=["model.net='attention'", "model.num_heads=2", "model.dim=16", "model.depth=1",
                                f"model.seq_len={SEQ}", "model.latent_steps=1", "model.refinement_blocks=1",
                                f"model.max_supervision_steps={max_sup}", "train.carry='refill'",
                                f"train.batch_size={SLOTS}", "train.micro_batch_size=3", "train.device='cpu'",
                                "train.warmup_steps=0", "train.ema_decay=0", *sets])
    return Trainer(cfg, VOCAB, total_steps=100, num_puzzle_ids=20)


def batch(step: int) -> Batch:
    """Each step's batch marks its rows: input token = step % VOCAB, puzzle id = 10 + row."""
    inputs = torch.full((SLOTS, SEQ), step % VOCAB)
    return Batch(inputs, torch.randint(0, VOCAB, (SLOTS, SEQ), generator=torch.Generator().manual_seed(step)),
                 puzzle_ids=torch.arange(10, 10 + SLOTS))


def test_slots_run_their_supervision_steps_then_take_the_next_sample() -> None:
    tr = trainer("model.halt_threshold=1.0")  # the halting head never fires: every sample runs all 3 steps
    completed = []
    for step in range(1, 8):
        metrics = tr.train_step(batch(step))
        assert int(tr.carry.steps.max()) <= 3  # never past max_supervision_steps
        completed.append(metrics.completed)
        # a slot holds the sample of the step it was refilled at: 1, then 4, then 7
        assert set(tr.carry.inputs[:, 0].tolist()) == {((step - 1) // 3 * 3 + 1) % VOCAB}
    assert completed == [0, 0, SLOTS, 0, 0, SLOTS, 0]
    assert metrics.updates == 1


def test_halting_frees_a_slot_at_once_unless_exploration_holds_it() -> None:
    eager = trainer("model.halt_threshold=0.0")  # the head always fires: every sample leaves after one step
    assert [eager.train_step(batch(s)).completed for s in range(1, 4)] == [SLOTS] * 3
    explored = trainer("model.halt_threshold=0.0", "model.halt_exploration=1.0", max_sup=4)
    steps_at_exit = []
    for s in range(1, 13):
        m = explored.train_step(batch(s))
        if m.completed:
            steps_at_exit.append(m.sup_steps)
    assert steps_at_exit and min(steps_at_exit) >= 2  # exploration: at least 2 steps, at most 4


def test_only_the_puzzle_embedding_rows_in_the_batch_change() -> None:
    tr = trainer("model.puzzle_emb_len=2", "train.puzzle_emb_lr=0.01", "train.puzzle_emb_weight_decay=0",
                 "train.carry='shrink'")
    table = tr.model.puzzle_emb.weights
    before = table.clone()
    tr.train_step(batch(1))
    changed = (table != before).any(1)
    assert changed[10:10 + SLOTS].all() and not changed[:10].any() and not changed[10 + SLOTS:].any()
    # sign-SGD from zero: each update moves a coordinate by exactly the learning rate (3 updates in this step)
    moved = table[10:10 + SLOTS]
    assert 0 < moved.abs().max() <= 0.03 + 1e-6
    assert torch.allclose((moved / 0.01).round(), moved / 0.01, atol=1e-3)  # whole multiples of the rate


def tiny_puzzles(root: Path) -> Path:
    """A reference-format set with a puzzle identifier per puzzle: copy the input, shifted by the identifier."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 24), ("test", 6)):
        ids = np.arange(1, count + 1) if split == "train" else np.arange(1, count + 1) * 3
        inputs = rng.integers(1, VOCAB, (count, SEQ))
        labels = (inputs + ids[:, None]) % (VOCAB - 1) + 1
        meta = PuzzleMetadata(pad_id=0, ignore_label_id=0, blank_identifier_id=0, vocab_size=VOCAB, seq_len=SEQ,
                              num_puzzle_identifiers=25, total_groups=count, mean_puzzle_examples=1.0,
                              total_puzzles=count, sets=["all"])
        write_split(root, split, meta, {"all": {"inputs": inputs.astype(np.uint8), "labels": labels.astype(np.uint8),
                                                "puzzle_identifiers": ids, "puzzle_indices": np.arange(count + 1),
                                                "group_indices": np.arange(count + 1)}})
    return root


@pytest.mark.process
@pytest.mark.parametrize("net", ["attention", "mlp_t"])
def test_stop_and_resume_mid_carry_is_bit_identical(tmp_path: Path, net: str) -> None:
    data = tiny_puzzles(tmp_path / "data")
    sets = ["data.kind='puzzles'", f"data.dataset_dir='{data}'", f"model.net='{net}'", "model.num_heads=2",
            "model.dim=16", "model.depth=1", "model.latent_steps=1", "model.refinement_blocks=2",
            "model.max_supervision_steps=4", "model.puzzle_emb_len=2", "model.halt_exploration=0.5",
            "train.carry='refill'", "train.loss='stablemax'", "train.batch_size=6", "train.max_steps=14",
            "train.eval_every=7", "train.eval_batches=0", "train.checkpoint_every=3", "train.threads=1",
            "train.warmup_steps=2", "train.ema_decay=0.9"]
    args = [a for s in sets for a in ("--set", s)]
    straight = run_worker(tmp_path / "straight", args)
    assert straight.returncode == 0, straight.stderr
    split = tmp_path / "split"
    assert run_worker(split, args, TRM_TEST_STOP_AT_STEP=5).returncode == 0  # mid-carry: slots half-way through
    assert run_worker(split, ["--resume"]).returncode == 0
    lines = lambda d: {e["step"]: (e["loss"], e["completed"], e["sup_steps"]) for e in events(d, "step")}  # noqa: E731
    assert lines(split) == lines(tmp_path / "straight") and len(lines(split)) == 14
    assert sum(c for _, c, _ in lines(split).values()) > 0  # slots were refilled along the way
    evals = lambda d: [(e["loss"], e["exact"]) for e in events(d, "eval")]  # noqa: E731
    assert evals(split) == evals(tmp_path / "straight")  # the EMA and the embeddings came back too
