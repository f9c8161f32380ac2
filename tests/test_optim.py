"""AdamATan2 (``train.optimizer = "adam_atan2"``), the reference's optimizer: its two paths agree, its state
round-trips, and a stop and resume stays bit-identical. Its update against the package's own kernel and test
reference: ``tests/test_adam_atan2_kernel.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trm_core.train.update.adam_atan2 import AdamATan2

from helpers import events, step_losses, straight_and_split

LR, BETAS, WD = 0.01, (0.9, 0.95), 0.5


def test_foreach_and_one_by_one_agree() -> None:
    shapes = [(7, 3), (5,), (2, 2, 2)]
    runs = []
    for foreach in (True, False):
        params = [torch.nn.Parameter(torch.ones(s)) for s in shapes]
        opt = AdamATan2(params, lr=LR, betas=BETAS, weight_decay=WD, foreach=foreach)
        g = torch.Generator().manual_seed(1)
        for _ in range(4):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        runs.append([p.detach().clone() for p in params])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_its_state_round_trips_through_a_state_dict(tmp_path: Path) -> None:
    def grads(step: int) -> torch.Tensor:
        return torch.randn(4, 3, generator=torch.Generator().manual_seed(step))

    straight = torch.nn.Parameter(torch.ones(4, 3))
    opt = AdamATan2([straight], lr=LR, betas=BETAS, weight_decay=WD)
    for step in range(6):
        straight.grad = grads(step)
        opt.step()
    first = torch.nn.Parameter(torch.ones(4, 3))
    opt = AdamATan2([first], lr=LR, betas=BETAS, weight_decay=WD)
    for step in range(3):
        first.grad = grads(step)
        opt.step()
    torch.save({"w": first.detach(), "opt": opt.state_dict()}, tmp_path / "state.pt")
    saved = torch.load(tmp_path / "state.pt")
    again = torch.nn.Parameter(saved["w"].clone())
    opt = AdamATan2([again], lr=LR, betas=BETAS, weight_decay=WD)
    opt.load_state_dict(saved["opt"])
    for step in range(3, 6):
        again.grad = grads(step)
        opt.step()
    assert torch.equal(again, straight)


@pytest.mark.process
def test_a_run_on_adam_atan2_stops_and_resumes_bit_identically(tmp_path: Path, micro_args: list[str]) -> None:
    args = [*micro_args, "--set", "train.optimizer='adam_atan2'", "--set", "train.max_steps=10",
            "--set", "train.checkpoint_every=4", "--set", "train.weight_decay=0.5"]
    straight, split = straight_and_split(tmp_path, args, stop_at=5)
    assert step_losses(split) == step_losses(straight) and len(step_losses(split)) == 10
    start = events(split, "run_start")[0]
    assert start["config"]["train"]["optimizer"] == "adam_atan2"


@pytest.mark.parametrize("warmup", [True, False])
def test_the_ema_warms_up_only_when_asked(warmup: bool) -> None:
    """The reference's EMA (``train.ema_warmup = false``) averages at 0.999 from the first update; ours by
    default warms up as min(0.999, (1 + n) / (10 + n))."""
    from trm_core.train.update.ema import EMA

    live = torch.nn.Linear(3, 1, bias=False)
    torch.nn.init.zeros_(live.weight)
    ema = EMA(live, 0.999, warmup=warmup)
    expected = torch.zeros(1, 3)
    for n in range(3):
        with torch.no_grad():
            live.weight.add_(1.0)
        ema.update()
        decay = min(0.999, (1 + n) / (10 + n)) if warmup else 0.999
        expected = decay * expected + (1 - decay) * live.weight.detach()
        torch.testing.assert_close(ema.model.weight, expected, rtol=1e-6, atol=1e-7)
    assert ema.model.weight[0, 0].item() == pytest.approx(2.7 if warmup else 0.006, rel=0.01)
