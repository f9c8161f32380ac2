"""Plain-text lines for the headless front end: one progress line, and one line per notable event."""

from __future__ import annotations

import datetime
from typing import Any


def format_duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(0, seconds))))


def progress_line(step: dict[str, Any], eta_s: float | None) -> str:
    total = step.get("total_steps") or 0
    pct = f" ({100 * step['step'] / total:.1f}%)" if total else ""
    eta = f" | ETA {format_duration(eta_s)}" if eta_s is not None else ""
    return (f"step {step['step']}/{total}{pct} epoch {step.get('epoch', '?')} loss {step['loss']:.4f} "
            f"acc {step.get('accuracy', 0):.3f} | {step.get('samples_per_s', 0):.1f} samples/s{eta}")


def event_line(ev: dict[str, Any]) -> str | None:
    """One line for a notable event (headless output, the dashboard's events pane); None for the rest."""
    kind = ev["event"]
    if kind == "run_start":
        resumed = f", resumed from step {ev['resumed_from']}" if ev.get("resumed_from") is not None else ""
        return (f"run started: pid {ev.get('pid')} on {ev.get('device')}, {ev.get('parameters', 0):,} parameters, "
                f"{ev.get('total_steps')} steps{resumed}")
    if kind == "checkpoint":
        name = str(ev.get("path", "")).rsplit("/", 1)[-1]
        return f"checkpoint: step {ev['step']} -> {name} ({ev['bytes'] / 2**20:.1f} MiB, {ev['seconds']:.2f}s)"
    if kind == "eval":
        return f"eval: step {ev['step']} loss {ev['loss']:.4f} acc {ev['accuracy']:.3f} exact {ev['exact']:.3f}"
    if kind in ("warning", "error"):
        return f"{kind}: {ev.get('message', '')}"
    if kind == "stall":
        return f"stall: {ev.get('phase')} of step {ev.get('step')} ran {ev.get('seconds')}s (timeout {ev.get('timeout_s')}s)"
    if kind == "restart":
        return f"restart: the worker failed at step {ev.get('failed_step')} ({ev.get('reason')}); {ev.get('message')}"
    if kind == "give_up":
        return f"giving up: the worker failed at step {ev.get('failed_step')} ({ev.get('reason')}); {ev.get('message')}"
    if kind == "run_end":
        return f"run ended: {ev.get('status')} at step {ev.get('step')} ({ev.get('reason', '')})"
    if kind == "autotune_start":
        return (f"auto-tune: searching from batch {ev.get('batch_size')} micro {ev.get('micro_batch_size')} on "
                f"{ev.get('device')}, memory limit {ev.get('memory_limit_mb', 0):,.0f} MiB")
    if kind == "autotune_trial":
        return f"auto-tune trial: {trial_text(ev)}"
    if kind == "autotune_result":
        changed = ev.get("changed") or {}
        what = ", ".join(f"{k.split('.', 1)[1]} {a} -> {b}" for k, (a, b) in changed.items()) or "no change"
        speed = ""
        if ev.get("before_samples_per_s") and ev.get("after_samples_per_s"):
            speed = f" ({ev['before_samples_per_s']:.1f} -> {ev['after_samples_per_s']:.1f} samples/s)"
        return f"auto-tune result: {what}{speed}" + (" [cancelled]" if ev.get("cancelled") else "")
    return None


def trial_text(ev: dict[str, Any]) -> str:
    """A trial, from its event fields: what was tried and what came of it."""
    what = f"micro {ev['micro_batch_size']} threads {ev['threads'] or 'default'}"
    if ev.get("batch_size") is not None:
        what = f"batch {ev['batch_size']} " + what
    if ev.get("accepted"):
        return f"{what}: {ev['samples_per_s']:.1f} samples/s, peak {ev['peak_mb']:,.0f} MiB"
    return f"{what}: rejected, {ev.get('reason')}"
