"""Which numbers of which events become which TensorBoard tags, and what a text event says.

Stable tags, grouped the way TensorBoard shows them: ``train/*`` from each step, ``eval/*`` from each
held-out eval, ``perf/*`` for speed, memory and the time spent saving. A field a newer worker adds lands
under its event's group without a change here.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

# fields that are the event's position or bookkeeping, not a measurement
NOT_SCALARS = frozenset({"event", "time", "v", "step", "total_steps", "world_size", "slowest_rank"})
# step fields about speed and memory rather than learning
PERF_FIELDS = frozenset({"samples_per_s", "tokens_per_s", "step_s", "data_s", "peak_mem_mb", "slowest_step_s"})
# events shown as text at their step: the run's story between the curves
TEXT_KINDS = frozenset({"run_start", "run_end", "restart", "give_up", "error", "stall", "warning", "rank_down",
                        "autotune_result"})
# per kind, fields too long for a text line (the whole config, thread stacks)
LONG_FIELDS = frozenset({"config", "threads", "traceback", "overrides", "hosts", "data"})


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def scalars(event: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """The (tag, value) pairs of one event; nothing for an event with no curve."""
    kind = event.get("event")
    if kind == "step":
        for name, value in event.items():
            if name not in NOT_SCALARS and is_number(value):
                yield (f"perf/{name}" if name in PERF_FIELDS else f"train/{name}"), float(value)
    elif kind == "eval":
        for name, value in event.items():
            if name in NOT_SCALARS or name == "epoch" or not is_number(value):
                continue
            yield ("perf/eval_s" if name == "seconds" else f"eval/{name}"), float(value)
    elif kind == "checkpoint":
        if is_number(event.get("seconds")):
            yield "perf/checkpoint_s", float(event["seconds"])
        if is_number(event.get("bytes")):
            yield "perf/checkpoint_mb", event["bytes"] / 2**20


def text(event: dict[str, Any]) -> str:
    """One line of Markdown for an event TensorBoard shows as text: its kind, then its short fields."""
    fields = []
    for name, value in event.items():
        if name in ("event", "time", "v") or name in LONG_FIELDS or value is None:
            continue
        if isinstance(value, float) and math.isfinite(value):
            value = f"{value:.6g}"
        fields.append(f"{name}: `{value}`")
    return f"**{event['event']}** " + ", ".join(fields)


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"dim": 64}}`` -> ``{"model.dim": 64}``; lists become their text (HParams takes scalars)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(str(v) for v in value)
        else:
            flat[name] = value
    return flat


# the final scores TensorBoard's HParams tab shows beside each run's config (the newest value of each tag)
HPARAM_METRICS = ("eval/loss", "eval/accuracy", "eval/exact", "eval/masked_accuracy", "eval/pass@1",
                  "eval/pass@2", "eval/best_score", "train/loss")
