"""Parity with the reference implementation (SamsungSAILMontreal/TinyRecursiveModels) on the CPU in float32: the
same weights and the same batches through its TinyRecursiveReasoningModel_ACTV1 wrapped in ACTLossHead (as its
pretrain.py trains) and through our trainer's refill step (``train.carry = "refill"``, ``train.loss = "stablemax"``,
``model.halt_loss_weight = 0.5``), for both of the reference's networks (mlp_t without positions, attention with
RoPE). After every supervision step it compares the logits, the halting logits, the carried (y, z), the steps and
halted flags, the losses and every weight's gradient (the puzzle-embedding rows' included).

The reference's code is imported from a checkout of it, never copied:

    git -C <mirror> worktree add /tmp/ref HEAD     # or: git archive HEAD | tar -x -C /tmp/ref
    pip install pydantic einops                    # the reference's imports
    python -m bench.reference_parity --ref-dir /tmp/ref

Weights go from the reference to ours by an explicit name map that must cover every state_dict entry of both
exactly once. The reference's Q head (zero-initialised) and puzzle embeddings (zero) are first filled with random
values, so the halting logits and the puzzle rows mean something and some samples halt mid-run. Exploration off;
our optimizer update is replaced by a hook that records the gradients and zeroes them (the reference takes no
optimizer step either), so the weights stay the same on both sides and the run checks the forward and the backward
of every step, the carry in between included. Exit status 1 on any FAIL.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import MethodType

import torch


from trm_core.config import resolve
from trm_core.data.base import IGNORE, Batch
from trm_core.train.trainer import Trainer
from trm_core.weights.reference import our_name


def ref_config(a: argparse.Namespace, net: str) -> dict:
    return dict(batch_size=a.batch, seq_len=a.seq_len, puzzle_emb_ndim=a.dim, num_puzzle_identifiers=a.puzzles,
                vocab_size=a.vocab, H_cycles=a.T, L_cycles=a.n, H_layers=0, L_layers=a.depth, hidden_size=a.dim,
                expansion=a.expansion, num_heads=a.heads, pos_encodings="rope" if net == "attention" else "none",
                halt_max_steps=a.max_steps, halt_exploration_prob=0.0, forward_dtype="float32",
                mlp_t=net == "mlp_t", puzzle_emb_len=a.prefix, no_ACT_continue=True)


def our_config(a: argparse.Namespace, net: str):
    sets = {"model.net": repr(net), "model.dim": a.dim, "model.depth": a.depth, "model.seq_len": a.seq_len,
            "model.vocab_size": a.vocab, "model.latent_steps": a.n, "model.refinement_blocks": a.T,
            "model.max_supervision_steps": a.max_steps, "model.num_heads": a.heads, "model.expansion": a.expansion,
            "model.pos_encoding": repr("rope" if net == "attention" else "none"), "model.puzzle_emb_len": a.prefix,
            "model.halt_exploration": 0.0, "model.halt_loss_weight": 0.5, "model.halt_threshold": 0.5,
            "train.carry": "'refill'", "train.loss": "'stablemax'", "train.batch_size": a.batch,
            "train.device": "'cpu'", "train.threads": 1, "train.precision": "'fp32'", "train.compile": "false",
            "train.ema_decay": 0.0, "train.warmup_steps": 0, "train.puzzle_emb_lr": 1e-2,
            "train.puzzle_emb_weight_decay": 0.1}
    return resolve(env={}, sets=[f"{k}={v}" for k, v in sets.items()], default_file=Path("/nonexistent/config.toml"))


def name_map(ref_sd: dict, our_sd: dict) -> dict[str, str]:
    """The reference's key -> ours, by trm-tui import's own map (trm_core/weights/reference.py): every key of both
    sides exactly once, every shape equal."""
    mapping = {rk: our_name(rk) for rk in ref_sd}
    unknown = [rk for rk, ok in mapping.items() if ok is None]
    assert not unknown, f"reference keys the map does not know: {unknown}"
    targets = list(mapping.values())
    assert len(set(targets)) == len(targets), "two reference tensors map to one of ours"
    assert set(targets) == set(our_sd), (f"unmapped ours: {sorted(set(our_sd) - set(targets))}; "
                                         f"mapped to nothing of ours: {sorted(set(targets) - set(our_sd))}")
    for rk, ok in mapping.items():
        assert ref_sd[rk].shape == our_sd[ok].shape, f"{rk} {tuple(ref_sd[rk].shape)} vs {ok} {tuple(our_sd[ok].shape)}"
    return mapping


class Table:
    """Rows (network, quantity, step); printed one row per (network, quantity) with the worst over the steps, or
    every row with --verbose."""

    def __init__(self, tol: float) -> None:
        self.tol, self.rows, self.failed = tol, [], False

    def close(self, net: str, what: str, ours: torch.Tensor, ref: torch.Tensor, step: int = 0) -> bool:
        ours, ref = ours.detach().double(), ref.detach().double()
        assert ours.shape == ref.shape, f"{net} {what}: shapes {tuple(ours.shape)} vs {tuple(ref.shape)}"
        diff = (ours - ref).abs().max().item() if ref.numel() else 0.0
        scale = ref.abs().max().item() if ref.numel() else 0.0
        ok = diff <= self.tol * max(scale, 1e-6)
        self.rows.append((net, what, step, diff, scale, None, ok))
        self.failed |= not ok
        return ok

    def equal(self, net: str, what: str, ours: torch.Tensor, ref: torch.Tensor, step: int = 0) -> bool:
        ok = torch.equal(ours.cpu().long(), ref.cpu().long())
        note = "equal" if ok else f"ours {ours.long().tolist()} ref {ref.long().tolist()}"
        self.rows.append((net, what, step, None, None, note, ok))
        self.failed |= not ok
        return ok

    def print(self, verbose: bool) -> None:
        out = [("network", "quantity", "max abs diff", "max |ref|", "")]
        groups: dict = {}
        for net, what, step, diff, scale, note, ok in self.rows:
            key = (net, f"step {step}: {what}" if verbose and step else what)
            groups.setdefault(key, []).append((step, diff, scale, note, ok))
        for (net, what), rs in groups.items():
            ok = all(r[4] for r in rs)
            steps = sorted({r[0] for r in rs if r[0]})
            label = what + (f" (steps {steps[0]}-{steps[-1]})" if len(steps) > 1 else "")
            if rs[0][1] is None:
                notes = [r[3] for r in rs if r[3] != "equal"]
                out.append((net, label, "equal" if ok else "; ".join(notes), "", "PASS" if ok else "FAIL"))
            else:
                worst = max(rs, key=lambda r: r[1] / max(r[2], 1e-6))
                out.append((net, label, f"{worst[1]:.1e}", f"{max(r[2] for r in rs):.1e}", "PASS" if ok else "FAIL"))
        widths = [max(len(str(r[i])) for r in out) for i in range(5)]
        for r in out:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def make_batches(a: argparse.Namespace, count: int, gen: torch.Generator) -> list[Batch]:
    batches = []
    for _ in range(count):
        inputs = torch.randint(0, a.vocab, (a.batch, a.seq_len), generator=gen)
        targets = torch.randint(0, a.vocab, (a.batch, a.seq_len), generator=gen)
        targets[torch.rand(targets.shape, generator=gen) < 0.3] = IGNORE
        targets[0] = IGNORE                  # no supervised position: "exact" by definition on both sides
        targets[1, 1:] = IGNORE              # one supervised position
        ids = torch.randint(0, a.puzzles, (a.batch,), generator=gen)
        batches.append(Batch(inputs, targets, None, ids))
    return batches


def import_check(net: str, a: argparse.Namespace, ref, model, table: Table) -> None:
    """trm-tui import reference's two halves on what the reference's own classes hold: its state dict (as
    pretrain.py saves it) converted to ours, tensor for tensor; and its arch config (the dict its TRM was built
    from, as all_config.yaml carries it) resolved to our model section, key for key."""
    from trm_core.weights.reference import ARCH_NAME, convert, reference_sets

    converted = convert(ref.state_dict(), model.state_dict(), "the reference's state dict")
    same = all(torch.equal(converted[k], v) for k, v in model.state_dict().items())
    table.equal(net, "import: the state dict converted", torch.tensor(int(same)), torch.tensor(1))
    shape_keys = ("batch_size", "seq_len", "num_puzzle_identifiers", "vocab_size")  # the dataset's, not the yaml's
    arch = {"name": ARCH_NAME, "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"},
            **{k: v for k, v in ref.model.config.model_dump().items() if k not in shape_keys}}
    ours = our_config(a, net).model
    sets = reference_sets({"arch": arch}, "the reference's config")
    differ = [f"{k}: {v!r} vs {getattr(ours, k.split('.')[1])!r}" for k, v in sets.items()
              if k.startswith("model.") and v != getattr(ours, k.split(".")[1])]
    table.equal(net, "import: the arch config" + (f" ({'; '.join(differ)})" if differ else ""),
                torch.tensor(int(not differ)), torch.tensor(1))


def run(net: str, a: argparse.Namespace, table: Table, ref_mods) -> None:
    TRM, ACTLossHead, signsgd = ref_mods
    torch.manual_seed(a.seed)
    ref = ACTLossHead(TRM(ref_config(a, net)), loss_type="stablemax_cross_entropy")
    ref.train()
    inner = ref.model.inner
    gen = torch.Generator().manual_seed(a.seed + 1)
    with torch.no_grad():  # give the zero-initialised reference tensors random values
        inner.q_head.weight.copy_(torch.randn(inner.q_head.weight.shape, generator=gen) / a.dim ** 0.5)
        inner.q_head.bias.copy_(torch.randn(2, generator=gen) * 0.5)
        inner.puzzle_emb.weights.copy_(torch.randn(inner.puzzle_emb.weights.shape, generator=gen) / a.dim ** 0.5)

    tr = Trainer(our_config(a, net), vocab_size=a.vocab, total_steps=1000, num_puzzle_ids=a.puzzles)
    model = tr.model
    ref_sd, our_sd = ref.state_dict(), model.state_dict()
    mapping = name_map(ref_sd, our_sd)
    model.load_state_dict({mapping[k]: v.clone() for k, v in ref_sd.items()}, strict=True)
    table.equal(net, f"state_dict: {len(mapping)} tensors mapped 1:1", torch.tensor(1), torch.tensor(1))
    import_check(net, a, ref, model, table)
    if a.perturb:  # the harness's own check: a wrong weight must FAIL
        with torch.no_grad():
            model.lm_head.weight[0, 0] += 1e-3
    if net == "attention":  # the rotary tables (non-persistent buffers, built, not copied)
        rot = model.net.blocks[0].attention.rotary
        table.close(net, "rope cos", rot.cos[:, 0, 0], inner.rotary_emb.cos_cached)
        table.close(net, "rope sin", rot.sin[:, 0, 0], inner.rotary_emb.sin_cached)
    ref_params = dict(ref.named_parameters())
    our_params = dict(model.named_parameters())
    assert {mapping[k] for k in ref_params} == set(our_params), "parameters are not the mapped state_dict entries"

    # ours: the trainer's refill step as is, except the update: record the gradients and zero them
    seen: dict = {}

    def record(self, emb_lr, where=None):  # where: the step site, in trainers that passed one
        seen["grads"] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        emb = model.puzzle_emb
        seen["puzzle_rows"] = torch.cat([rows.grad for _, rows in emb._pending])
        before = emb.weights.clone()  # the puzzle embeddings' sign-SGD step, as the trainer takes it; then undone
        emb.step(emb_lr, self.cfg.train.puzzle_emb_weight_decay)
        seen["emb_lr"], seen["emb_after"] = emb_lr, emb.weights.clone()
        assert emb_lr > 0 and not torch.equal(seen["emb_after"], before), "the sign-SGD step changed nothing"
        emb.weights.copy_(before)
        for p in model.parameters():
            p.grad = None
        return torch.tensor(0.0)

    tr._update = MethodType(record, tr)
    inner_forward = tr.forward

    def forward(*args, **kw):
        out = inner_forward(*args, **kw)
        seen["out"] = out
        return out

    tr.forward = forward

    batches = make_batches(a, a.calls, torch.Generator().manual_seed(a.seed + 2))
    ref_carry, halted_log = None, []
    for k, b in enumerate(batches):
        # reference: pretrain.py's train_batch without the optimizer
        rb = {"inputs": b.inputs.to(torch.int32), "labels": b.targets.to(torch.int32),
              "puzzle_identifiers": b.puzzle_ids.to(torch.int32)}
        if ref_carry is None:
            ref_carry = ref.initial_carry(rb)
        ref_carry, loss, metrics, outs, _ = ref(carry=ref_carry, batch=rb,
                                                return_keys=["logits", "q_halt_logits"])
        ((1 / a.batch) * loss).backward()
        ref_grads = {n: p.grad.clone() for n, p in ref_params.items() if p.grad is not None}
        ref_rows = inner.puzzle_emb.local_weights.grad.clone()
        for p in ref_params.values():
            p.grad = None
        inner.puzzle_emb.local_weights.grad = None

        m = tr.train_step(b)
        out, carry = seen["out"], tr.carry
        t = k + 1
        table.close(net, "logits", out.logits.transpose(0, 1), outs["logits"], t)
        table.close(net, "halt logit (q_halt)", out.halt_logit, outs["q_halt_logits"], t)
        table.close(net, "carry y (z_H)", carry.y.transpose(0, 1), ref_carry.inner_carry.z_H, t)
        table.close(net, "carry z (z_L)", carry.z.transpose(0, 1), ref_carry.inner_carry.z_L, t)
        table.equal(net, "steps", carry.steps, ref_carry.steps, t)
        table.equal(net, "halted", carry.halted, ref_carry.halted, t)
        halted_log.append("".join("H" if h else "." for h in ref_carry.halted.tolist()))
        table.equal(net, "carried inputs, labels, puzzle ids", torch.stack([
            carry.inputs.flatten(), carry.targets.flatten(), carry.puzzle_ids.repeat(a.seq_len)]), torch.stack([
            ref_carry.current_data["inputs"].flatten(), ref_carry.current_data["labels"].flatten(),
            ref_carry.current_data["puzzle_identifiers"].repeat(a.seq_len)]), t)
        table.close(net, "lm loss / batch", torch.tensor(m.loss), metrics["lm_loss"] / a.batch, t)
        table.close(net, "halt loss / batch", torch.tensor(m.halt_loss), metrics["q_halt_loss"] / a.batch, t)
        table.close(net, "total loss / batch", torch.tensor(m.loss + 0.5 * m.halt_loss), loss.detach() / a.batch, t)
        grads = seen["grads"]
        assert set(grads) == {mapping[n] for n in ref_grads}, "different parameters got gradients"
        for n, g in ref_grads.items():
            table.close(net, f"grad {mapping[n]}" if a.verbose else f"grad, each of {len(ref_grads)} weights",
                        grads[mapping[n]], g, t)
        table.close(net, "grad puzzle-emb rows", seen["puzzle_rows"], ref_rows, t)
        ref_after = inner.puzzle_emb.weights.clone()  # the reference's sign-SGD on the same rows (one process)
        signsgd(ref_rows, inner.puzzle_emb.local_ids, ref_after, lr=seen["emb_lr"], weight_decay=0.1, world_size=1)
        table.close(net, "puzzle-emb table after sign-SGD", seen["emb_after"], ref_after, t)
    print(f"{net}: halted after each step (H = halted, a row per slot): {' '.join(halted_log)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref-dir", required=True, type=Path, help="a checkout of TinyRecursiveModels")
    p.add_argument("--nets", default="mlp_t,attention")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--vocab", type=int, default=11)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--T", type=int, default=3, help="refinement_blocks = H_cycles")
    p.add_argument("--n", type=int, default=2, help="latent_steps = L_cycles")
    p.add_argument("--max-steps", type=int, default=3, help="max_supervision_steps = halt_max_steps")
    p.add_argument("--calls", type=int, default=5, help="supervision steps driven (beyond max-steps: refills)")
    p.add_argument("--prefix", type=int, default=2, help="puzzle_emb_len")
    p.add_argument("--puzzles", type=int, default=7, help="puzzle identifiers")
    p.add_argument("--expansion", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-5, help="a PASS: max abs diff <= tol * max |ref| (at least 1e-6)")
    p.add_argument("--verbose", action="store_true", help="a row per step and per weight's gradient")
    p.add_argument("--perturb", action="store_true", help="nudge one of our weights: every step must then FAIL")
    a = p.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(a.ref_dir.resolve()))
    from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1
    from models.losses import ACTLossHead
    from models.sparse_embedding import _sparse_emb_signsgd_dist
    started = time.perf_counter()
    table = Table(a.tol)
    for net in a.nets.split(","):
        run(net, a, table, (TinyRecursiveReasoningModel_ACTV1, ACTLossHead, _sparse_emb_signsgd_dist))
    table.print(a.verbose)
    print(f"{'FAIL' if table.failed else 'PASS'} in {time.perf_counter() - started:.1f} s")
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
