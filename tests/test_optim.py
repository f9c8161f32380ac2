"""AdamATan2 (``train.optimizer = "adam_atan2"``), the reference's optimizer: its update written out by hand,
its bounded step, and a stop and resume that stays bit-identical."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trm_core.train.update.adam_atan2 import AdamATan2

from helpers import events, run_worker

LR, BETAS, WD = 0.01, (0.9, 0.95), 0.5


def by_hand(p0: list[float], grads: list[list[float]]) -> list[float]:
    """The adam-atan2 kernel's update, coordinate by coordinate, in Python floats."""
    p, m, v = list(p0), [0.0] * len(p0), [0.0] * len(p0)
    b1, b2 = BETAS
    for t, g in enumerate(grads, 1):
        for i, gi in enumerate(g):
            p[i] *= 1 - LR * WD
            m[i] += (1 - b1) * (gi - m[i])
            v[i] += (1 - b2) * (gi * gi - v[i])
            p[i] -= LR * math.atan2(m[i] / (1 - b1 ** t), math.sqrt(v[i]) / math.sqrt(1 - b2 ** t))
    return p


@pytest.mark.parametrize("foreach", [True, False])
def test_the_update_is_the_kernels_written_out_by_hand(foreach: bool) -> None:
    p0 = [0.5, -1.25, 2.0, 0.0]
    # coordinate 3 never has a gradient: m = v = 0, atan2(0, 0) = 0, only the decay moves it
    grads = [[0.3, -2.0, 1e-6, 0.0], [-0.1, 4.0, 1e-6, 0.0], [0.2, 0.5, -3e-6, 0.0], [5.0, -0.5, 0.0, 0.0],
             [0.0, 0.1, 2e-6, 0.0]]
    w = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    second = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))  # a second tensor in the group
    opt = AdamATan2([w, second], lr=LR, betas=BETAS, weight_decay=WD, foreach=foreach)
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float64)
        second.grad = torch.tensor([g[0]], dtype=torch.float64)
        opt.step()
    expected = by_hand(p0, grads)
    assert w.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert second.tolist() == pytest.approx(by_hand([1.0], [[g[0]] for g in grads]), rel=1e-12)
    assert w[3].item() == pytest.approx(0.0) and opt.state[w]["step"].item() == len(grads)


def test_each_step_is_bounded_by_lr_times_half_pi_whatever_the_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(1000))
    opt = AdamATan2([w], lr=LR, betas=BETAS, weight_decay=0.0)
    biggest = 0.0
    for step in range(20):
        scale = 10.0 ** torch.randint(-12, 12, (1000,), generator=gen)  # from 1e-12 to 1e11
        w.grad = torch.randn(1000, generator=gen) * scale
        before = w.detach().clone()
        opt.step()
        biggest = max(biggest, (w.detach() - before).abs().max().item())
    # the first step is exactly lr * atan(1) for every coordinate (m_hat = g, sqrt(v_hat) = |g|); none passes
    # lr * pi / 2 however the gradients' scales jump (a sudden 1e11 after 1e-12 is no 1e11-sized step)
    assert LR * math.pi / 4 * (1 - 1e-6) <= biggest <= LR * math.pi / 2 * (1 + 1e-6)
    assert torch.isfinite(w).all()


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
    straight = run_worker(tmp_path / "straight", args)
    assert straight.returncode == 0, straight.stderr
    split = tmp_path / "split"
    assert run_worker(split, args, TRM_TEST_STOP_AT_STEP=5).returncode == 0
    assert run_worker(split, ["--resume"]).returncode == 0
    losses = lambda d: {e["step"]: e["loss"] for e in events(d, "step")}  # noqa: E731
    assert losses(split) == losses(tmp_path / "straight") and len(losses(split)) == 10
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
