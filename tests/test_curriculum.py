"""The recipe knobs of issue 41: a depth curriculum, weighted supervision steps, gradients through more recursions,
and time to target. What each changes is measured on the trainer itself (the gradients an update receives); a
stop and resume across a stage boundary is bit-identical; contradictions are refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import MICRO, cli_run, events, step_losses, straight_and_split
from trm_core.config import ConfigError, resolve
from trm_core.config.curriculum import parse_depth_schedule, stage_at, supervision_weights
from trm_core.data.base import Batch

NO_FILE = Path("/nonexistent/config.toml")


def config(*sets: str):
    return resolve(env={}, sets=list(sets), default_file=NO_FILE)


def test_the_keys_are_refused_where_they_contradict_themselves() -> None:
    for sets, said in [
        (['train.depth_schedule=["0 T=1 n=2", "0.3 T=0 n=4"]'], "train.depth_schedule[1] = '0.3 T=0 n=4': T and n"),
        (['train.depth_schedule=["0.1 T=1 n=2"]'], "the first stage starts at 0"),
        (['train.depth_schedule=["0 T=1 n=2", "0.5 T=2 n=2", "0.4 T=3 n=3"]'], "the fractions must increase"),
        (['train.depth_schedule=["0 T=1 n=2", "1.0 T=2 n=2"]'], "below 1"),
        (['train.depth_schedule=["T=1 n=2"]'], "expected 'FRACTION T=BLOCKS n=LATENT_STEPS'"),
        (['train.supervision_weights="decay:1.5"'], "D must be in (0, 1]"),
        (['train.supervision_weights="decay:0"'], "D must be in (0, 1]"),
        (['train.supervision_weights="linear"'], "expected 'equal' or 'decay:D'"),
        (["train.grad_recursions=-1"], "train.grad_recursions"),
        (["model.refinement_blocks=2", "model.latent_steps=2", 'train.depth_schedule=["0 T=1 n=1", "0.5 T=100 n=100"]'],
         "train.depth_schedule[1] = '0.5 T=100 n=100': deeper than the model (model.refinement_blocks = 2, "
         "model.latent_steps = 2)"),
    ]:
        with pytest.raises(ConfigError, match=None) as caught:
            config(*sets)
        assert said in str(caught.value), (sets, str(caught.value))
    assert config('train.depth_schedule=["0 T=1 n=2", "0.3 T=2 n=4", "0.6 T=3 n=6"]').train.depth_schedule[2] == \
        "0.6 T=3 n=6"


def test_stages_follow_the_fraction_of_the_run_and_the_weights_decay_with_a_mean_of_one() -> None:
    stages = parse_depth_schedule(["0 T=1 n=2", "0.3 T=2 n=4", "0.6 T=3 n=6"])
    assert [stage_at(stages, s, 100) for s in (0, 29, 30, 59, 60, 99)] == [0, 0, 1, 1, 2, 2]
    weights = supervision_weights("decay:0.7", 16)
    assert sum(weights) / 16 == pytest.approx(1.0)
    assert all(b / a == pytest.approx(0.7) for a, b in zip(weights, weights[1:]))
    assert supervision_weights("equal", 4) == [1.0] * 4 and supervision_weights("decay:1", 3) == [1.0] * 3


def _gradients_of_each_update(*sets: str, steps: int = 1) -> list[dict[str, torch.Tensor]]:
    """The gradient every update of one shrink step receives, the update itself replaced by a recorder (so every
    supervision step sees the same weights on both sides of a comparison)."""
    from trm_core.train.trainer import Trainer

    cfg = config("model.dim=16", "model.depth=1", "model.seq_len=8", "model.latent_steps=2",
                 "model.refinement_blocks=3", "model.max_supervision_steps=3", "model.halt_loss_weight=0",
                 "model.halt_threshold=1.0", "train.batch_size=4", "train.device='cpu'", "train.ema_decay=0",
                 "train.warmup_steps=0", "train.compile='off'", "data.kind='pairs'", "data.pairs_file='x'", *sets)
    trainer = Trainer(cfg, vocab_size=10, total_steps=10)
    seen: list[dict[str, torch.Tensor]] = []

    def record(emb_lr: float) -> torch.Tensor:
        seen.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        for p in trainer.model.parameters():
            p.grad = None
        return torch.tensor(0.0)

    trainer._update = record
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, 10, (4, 8), generator=gen)
    for _ in range(steps):
        trainer.train_step(Batch(inputs, (inputs + 1) % 10, None, None))
    return seen


def test_decayed_weights_scale_each_supervision_steps_answer_gradient_by_its_weight() -> None:
    equal = _gradients_of_each_update()
    decayed = _gradients_of_each_update("train.supervision_weights='decay:0.5'")
    weights = supervision_weights("decay:0.5", 3)  # 12/7, 6/7, 3/7
    assert len(equal) == len(decayed) == 3
    for t, (a, b) in enumerate(zip(equal, decayed)):
        for name in a:
            assert torch.allclose(b[name], a[name] * weights[t], rtol=1e-5, atol=1e-7), (t, name)
    # the reference's carry: one supervision step per training step, each slot weighed by the steps it has done
    equal = _gradients_of_each_update("train.carry='refill'", steps=3)
    decayed = _gradients_of_each_update("train.carry='refill'", "train.supervision_weights='decay:0.5'", steps=3)
    for t, (a, b) in enumerate(zip(equal, decayed)):
        for name in a:
            assert torch.allclose(b[name], a[name] * weights[t], rtol=1e-5, atol=1e-7), (t, name)


def test_more_recursions_carry_gradient_back_to_the_initial_latent() -> None:
    """The learned initial z enters the first block only: its gradient is none unless every block carries one (0,
    or 3 of 3); at 2 the gradient flows back through one more block, so the network's own gradient changes."""
    paper = _gradients_of_each_update()
    two, every = _gradients_of_each_update("train.grad_recursions=2"), _gradients_of_each_update("train.grad_recursions=0")
    three = _gradients_of_each_update("train.grad_recursions=3")
    assert "z_init" not in paper[0] and "z_init" not in two[0] and "z_init" in every[0]
    assert not torch.equal(paper[0]["net.blocks.0.token_mix.w1"], two[0]["net.blocks.0.token_mix.w1"])
    for a, b in zip(every, three):  # 0 means all three
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_depth_stage_runs_the_stages_blocks_and_eval_the_model_sections() -> None:
    from trm_core.train.trainer import Trainer

    cfg = config("model.dim=16", "model.depth=1", "model.seq_len=8", "model.max_supervision_steps=1",
                 "model.refinement_blocks=3", "model.latent_steps=2", "train.batch_size=2", "train.device='cpu'",
                 "train.compile='off'", 'train.depth_schedule=["0 T=1 n=1", "0.5 T=2 n=1"]', "data.kind='pairs'",
                 "data.pairs_file='x'")
    trainer = Trainer(cfg, vocab_size=10, total_steps=4)
    calls: list[int] = []
    trainer.model.net.register_forward_hook(lambda *_: calls.append(1))
    inputs = torch.randint(0, 10, (2, 8))
    for _ in range(4):
        calls.clear()
        trainer.train_step(Batch(inputs, inputs, None, None))
        assert len(calls) == {1: 2, 2: 2, 3: 4, 4: 4}[trainer.step]  # T x (n + 1) network calls
    assert (trainer.model.refinement_blocks, trainer.model.latent_steps) == (3, 2)  # between steps: the full depth


@pytest.mark.process
def test_a_stop_and_resume_across_a_stage_boundary_is_bit_identical_and_the_target_is_timed_once(
        tmp_path: Path) -> None:
    sets = [*MICRO, "train.max_steps=12", "train.checkpoint_every=3", "train.eval_every=4", "train.micro_batch_size=0",
            'train.depth_schedule=["0 T=1 n=1", "0.5 T=2 n=1"]', "train.supervision_weights='decay:0.7'",
            "train.grad_recursions=0", "train.target_score=0.01"]
    straight, split = straight_and_split(tmp_path, [a for s in sets for a in ("--set", s)], stop_at=5)
    assert step_losses(split) == step_losses(straight) and len(step_losses(split)) == 12
    stages = lambda d: [(e["step"], e["stage"], e["T"], e["n"]) for e in events(d, "depth_stage")]  # noqa: E731
    assert stages(straight) == [(1, 1, 1, 1), (7, 2, 2, 1)]
    assert stages(split) == [(1, 1, 1, 1), (6, 1, 1, 1), (7, 2, 2, 1)]  # the resumed start names its stage
    reached = events(split, "target_reached")  # the eval at step 4 scores 0; at step 8, after the resume, 0.287
    assert [(e["step"], e["samples"]) for e in reached] == [(8, 8 * 4)] == \
        [(e["step"], e["samples"]) for e in events(straight, "target_reached")]
    assert reached[0]["train_seconds"] < reached[0]["seconds"]  # the pause between the stop and the resume
    status = cli_run("status", "--run-dir", str(split))
    assert "to target   target reached at step 8" in status.stdout, status.stdout
    assert "depth       stage 2 of 2: T=2 n=1 (train.depth_schedule)" in status.stdout
