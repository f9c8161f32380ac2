"""``train.precision``: the reference's bf16 forward (weights cast at use, activations, residual stream and
carry in bf16, fp32 master weights), on a CPU here; ``train.bf16``, the key it replaced, still read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trm_core.config import ConfigError, resolve
from trm_core.data.base import Batch
from trm_core.evaluate.in_training import evaluate_trainer
from trm_core.train.trainer import Trainer

from helpers import events, run_worker

SEQ, VOCAB, SLOTS = 8, 6, 4


def trainer(net: str, precision: str, carry: str = "refill") -> Trainer:
    extra = ["model.num_heads=2"] if net == "attention" else ["model.pos_encoding='none'"]
    cfg = resolve(env={}, sets=[f"model.net='{net}'", "model.dim=16", "model.depth=1", f"model.seq_len={SEQ}",
                                "model.latent_steps=1", "model.refinement_blocks=2", "model.max_supervision_steps=2",
                                f"train.carry='{carry}'", f"train.batch_size={SLOTS}", "train.device='cpu'",
                                "train.warmup_steps=0", "train.ema_decay=0.9", f"train.precision='{precision}'",
                                *extra])
    return Trainer(cfg, VOCAB, total_steps=10)


def batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randint(1, VOCAB, (SLOTS, SEQ), generator=g), torch.randint(1, VOCAB, (SLOTS, SEQ), generator=g))


@pytest.mark.parametrize("net", ["attention", "mlp_t"])
def test_bf16_runs_the_forward_in_bf16_on_fp32_master_weights(net: str) -> None:
    tr = trainer(net, "bf16")
    seen: list[torch.dtype] = []
    hook = tr.model.net.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    y, z = tr.model.initial_state(SLOTS, SEQ)
    out = tr.model(batch().inputs, y, z)
    hook.remove()
    assert y.dtype == z.dtype == torch.bfloat16  # the carry
    assert out.y.dtype == out.z.dtype == torch.bfloat16 and out.logits.dtype == torch.bfloat16
    assert set(seen) == {torch.bfloat16}  # the residual stream through every application of the network
    assert out.halt_logit.dtype == torch.float32  # the halting head is read in fp32, as the reference's
    for step in range(3):
        metrics = tr.train_step(batch(step))
        assert torch.isfinite(torch.tensor(metrics.loss))
    assert tr.carry is not None and tr.carry.y.dtype == torch.bfloat16  # the refill carry holds bf16 states
    assert {p.dtype for p in tr.model.parameters()} == {torch.float32}  # master weights
    assert {p.dtype for p in tr.ema.model.parameters()} == {torch.float32}
    assert evaluate_trainer(tr, [batch(9)])["samples"] == SLOTS  # eval (on the EMA copy) runs the same forward


def test_fp32_and_autocast_on_a_cpu_keep_everything_in_fp32() -> None:
    for precision in ("fp32", "autocast"):
        tr = trainer("attention", precision)
        y, z = tr.model.initial_state(SLOTS, SEQ)
        out = tr.model(batch().inputs, y, z)
        assert out.logits.dtype == out.y.dtype == torch.float32


def test_the_old_bf16_key_is_read_and_named_in_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = resolve(env={}, sets=["train.bf16=false"])
    assert cfg.train.precision == "fp32"
    assert "warning: --set train.bf16=false: train.bf16 is deprecated; read as train.precision = 'fp32'" \
        in capsys.readouterr().err
    assert resolve(env={}, sets=["train.bf16=true"]).train.precision == "autocast"
    assert resolve(base={"train": {"bf16": True}}, env={}).train.precision == "autocast"  # an older run's file
    assert "saved run config" not in capsys.readouterr().err  # read silently: the worker rewrites it
    with pytest.raises(ConfigError, match="train.bf16 = 1 is not true or false"):
        resolve(env={}, sets=["train.bf16=1"])
    with pytest.raises(ConfigError, match="for its networks"):
        resolve(env={}, sets=["model.net='mixer'", "train.precision='bf16'"])


@pytest.mark.process
def test_a_bf16_run_on_a_cpu_says_it_is_slow_there(tmp_path: Path, micro_args: list[str]) -> None:
    args = [*micro_args, "--set", "model.net='attention'", "--set", "model.num_heads=2", "--set",
            "train.precision='bf16'", "--set", "train.max_steps=3"]
    done = run_worker(tmp_path / "run", args)
    assert done.returncode == 0, done.stderr
    warned = [e["message"] for e in events(tmp_path / "run", "warning")]
    assert any("train.precision = 'bf16' on cpu" in w and "slowly" in w for w in warned), warned
    assert len(events(tmp_path / "run", "step")) == 3
