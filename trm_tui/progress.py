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
    return None
