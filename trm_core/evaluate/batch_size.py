"""How many examples one eval batch holds: rows, not examples, are what memory pays for.

An example run as K trajectories is K rows of one batched forward (``test_time.trajectories``), so a batch of B
examples holds B x K rows. The batch is sized by rows, and a request that cannot fit even one example's K rows
(``--trajectories``, a model folder's ``[eval]``) or the user's ``--batch-size`` times K is refused before
anything is allocated, with the figures that say why.
"""

from __future__ import annotations

import torch

from trm_core.config import ConfigError, ModelConfig
from trm_core.evaluate.eval_model import EvalModel
from trm_core.telemetry.host_stats import free_memory, gib

CPU_ROWS = 256  # past this a CPU gains nothing, and the memory is the machine's, shared with whatever else runs
MEMORY_SHARE = 0.5  # of the memory free now: the eval's rows may take at most this much


def row_bytes(model: ModelConfig, vocab_size: int) -> int:
    """A generous bound on what one row holds at once in an eval forward (float32): its latents, the widest
    hidden layer's temporaries, an attention map, its logits, and the trace's copies of its answer."""
    seq, dim = model.seq_len, model.dim
    widest = max(model.expansion, model.expansion_factor, model.expansion_factor_token, 1.0)
    attention = seq * model.num_heads if model.net == "attention" else 0
    return 4 * seq * (dim * int(4 + 3 * widest) + attention + vocab_size + 8)


def check_fits(ev: EvalModel, model: ModelConfig, vocab_size: int, batch_size: int | None,
               batch_what: str = "--batch-size") -> None:
    """Refuse, naming the flag, an eval whose rows cannot fit: one example's K trajectories, or ``batch_size``
    examples of K each (``batch_what`` names where that count came from)."""
    k = ev.trajectories.count
    budget, per_row = MEMORY_SHARE * free_memory(ev.device), row_bytes(model, vocab_size)
    if k * per_row > budget:
        raise ConfigError(f"--trajectories {k}: one example's {k} trajectories need about {gib(k * per_row)} at "
                          f"once, more than {MEMORY_SHARE:.0%} of the {gib(budget / MEMORY_SHARE)} free on "
                          f"{ev.device}; ask for fewer")
    if batch_size is not None and batch_size * k * per_row > budget:
        most = max(1, int(budget // (k * per_row)))
        raise ConfigError(f"{batch_what} {batch_size}: {batch_size} examples x {k} trajectories need about "
                          f"{gib(batch_size * k * per_row)} at once, more than {MEMORY_SHARE:.0%} of the "
                          f"{gib(budget / MEMORY_SHARE)} free on {ev.device}; at most {most} fit")


def auto_batch_size(ev: EvalModel, seq_len: int, count: int, model: ModelConfig | None = None,
                    vocab_size: int = 0) -> int:
    """The most examples that fit without being wasteful, counted in rows (examples x trajectories): on a GPU,
    what one probe batch's peak memory says fits in 80% of the free memory; on a CPU, ``CPU_ROWS`` rows and no
    more than the memory bound allows."""
    k = ev.trajectories.count
    if ev.device.type != "cuda":
        most = CPU_ROWS // k
        if model is not None:
            most = min(most, int(MEMORY_SHARE * free_memory(ev.device) // (k * row_bytes(model, vocab_size))))
        return max(1, min(count, most))
    probe = max(1, min(count, 16))
    torch.cuda.synchronize(ev.device)
    torch.cuda.reset_peak_memory_stats(ev.device)
    base = torch.cuda.memory_allocated(ev.device)
    with torch.inference_mode(), ev.autocast():
        tokens = torch.zeros((probe, seq_len), dtype=torch.long, device=ev.device)
        y, z = ev.model.initial_state(probe, seq_len)
        ev.model(tokens, y, z, None)
    per_row = max(1, (torch.cuda.max_memory_allocated(ev.device) - base) / probe)
    return max(1, min(count, int(0.8 * free_memory(ev.device) / (per_row * k))))
