"""The train.* settings a chosen candidate writes: its micro-batch and threads, and with a new batch the
learning rate and the step counts that keep the run's amount of data."""

from __future__ import annotations

import math

from trm_core.autotune.search import Trial
from trm_core.config import Config


def choice_settings(cfg: Config, chosen: Trial, baseline: Trial | None, cores: int,
                     share: int) -> tuple[dict[str, object], str]:
    """The train.* values the chosen candidate sets: its micro-batch and threads, and with a new batch the
    learning rate and the step counts that keep the run's samples; and the note that says so ("" without)."""
    t, c = cfg.train, chosen.candidate
    new_train: dict[str, object] = {"micro_batch_size": c.micro_batch}
    default_threads = t.threads == 0 and baseline is not None and c.threads == baseline.candidate.threads
    if cores and not default_threads:  # torch's default count stays "default" (0), not pinned
        new_train["threads"] = c.threads
    if c.batch_size == share:
        return new_train, ""
    new_train["batch_size"] = c.batch_size
    new_train["learning_rate"] = scaled_learning_rate(t.learning_rate, t.batch_size, c.batch_size)
    new_train |= same_samples(t, c.batch_size)
    return new_train, sample_note(t, c.batch_size, new_train)


# Counted in steps, meant as amounts of data: with a batch k times larger, each is divided by k.
PER_SAMPLE_STEPS = ("max_steps", "warmup_steps", "eval_every", "checkpoint_every")


def same_samples(t, new_batch: int) -> dict[str, int]:
    """The step counts that keep the run's amount of data (and its cadence of evals and checkpoints) when the
    batch changes: a run of max_steps = 600 at batch 16 sees 9,600 samples, and must see them at batch 128
    too (75 steps), not eight times as many. With max_steps = 0 the run is counted in epochs, which the
    worker turns into steps with the new batch by itself."""
    out = {}
    for key in PER_SAMPLE_STEPS:
        steps = getattr(t, key)
        if steps:
            out[key] = max(1, round(steps * t.batch_size / new_batch))
    return out


def sample_note(t, new_batch: int, new_train: dict) -> str:
    if t.max_steps:
        what = (f"max_steps {t.max_steps} -> {new_train['max_steps']} keeps the run at about "
                f"{t.max_steps * t.batch_size:,} samples")
    else:
        what = f"the run is counted in epochs ({t.epochs}), so it keeps its samples"
    scaled = ", ".join(f"{k} {getattr(t, k)} -> {new_train[k]}" for k in PER_SAMPLE_STEPS[1:] if k in new_train)
    return (f"batch {t.batch_size} -> {new_batch}: {what}" + (f"; also {scaled}" if scaled else "")
            + "; learning rate by the square-root rule")


def scaled_learning_rate(lr: float, old_batch: int, new_batch: int) -> float:
    """The square-root rule for adaptive optimisers (AdamW): lr * sqrt(new / old) (Malladi et al., 2022,
    "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms")."""
    return lr * math.sqrt(new_batch / old_batch)


def saved_with(cfg: Config, train: dict[str, object]) -> dict:
    tables = cfg.to_dict()
    tables["train"].update(train)
    return tables
