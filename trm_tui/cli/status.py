"""``trm-tui status``: the state of a run, its figures, its GPUs and its ranks, as rows or one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trm_core.config import SupervisorConfig
from trm_core.config.start import saved_settings
from trm_core.control.run_status import RunStatus
from trm_core.control.snapshot import take_snapshot
from trm_core.distributed import rank_files
from trm_core.rundir.layout import EXIT_CONFIG
from trm_tui.cli.common import orphan_note, refuse_unless_run_folder, run_dir_arg
from trm_tui.event_text import duration, eval_text, gpu_line


def status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui status", description="Show the state of a run.")
    run_dir_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    return p


def cmd_status(argv: list[str]) -> int:
    args = status_parser().parse_args(argv)
    refused = refuse_unless_run_folder(args.run_dir, "trm-tui status")
    if refused is not None:
        return refused
    orphan = orphan_note(args.run_dir)  # a reading command starts nothing: it says what would help
    if orphan is not None:
        print(f"trm-tui: {orphan}", file=sys.stderr, flush=True)
    st = show_status(args.run_dir, saved_settings(args.run_dir), args.json)
    # a run whose config.toml does not read cannot be resumed: scripts must notice, not only a reader
    return EXIT_CONFIG if st.config_error else 0


def show_status(run_dir: Path, settings: SupervisorConfig, as_json: bool) -> RunStatus:
    """Print the run's snapshot (one JSON object, or a row per figure); returns its status for the caller."""
    snap = take_snapshot(run_dir, settings)
    st = snap.status
    if as_json:
        print(json.dumps(snap.to_dict()))
        return st
    rows = _run_rows(run_dir, st) + [("gpu", gpu_line(g)) for g in snap.gpus]
    if snap.launcher_pid:
        rows = [(k, f"{v} (the node's launcher, torchrun; each rank's pid is on its line)" if k == "pid" else v)
                for k, v in rows]
    rows += [(f"rank {r.status.rank}", _rank_text(r.status, r.health, snap.taken_at)) for r in snap.ranks]
    for key, value in rows:
        print(f"{key:<11} {value}")
    return st


def _run_rows(run_dir: Path, st: RunStatus) -> list[tuple[str, object]]:
    rows = [("run", str(run_dir) + ("" if st.mine else f" ({st.owner}'s: you may read it, not act on it)")),
            ("owner", st.owner or "-"), ("state", st.state + (f" ({st.reason})" if st.reason else "")),
            *([("error", f"in step {st.error_step}: {st.error} (the traceback: {run_dir / 'worker.log'}, and the "
                         f"error event in {run_dir / 'events.jsonl'})")] if st.error else []),
            ("pid", st.pid or "-"),
            ("step", f"{st.step}/{st.total_steps}" if st.step is not None else "-"), ("epoch", st.epoch or "-"),
            ("loss", f"{st.loss:.4f}" if isinstance(st.loss, float) else "-"),
            ("samples/s", f"{st.samples_per_s:.1f}" if st.samples_per_s else "-"), ("ETA", duration(st.eta_s)),
            ("eval", eval_text(st.eval_metric, st.eval_score, st.best_score, st.best_step, st.target_score,
                               st.target_name)),
            ("checkpoint", f"step {st.checkpoint_step}, {duration(st.checkpoint_age_s)} old"
                           + (" (STALE)" if st.checkpoint_stale else "") if st.checkpoint_step is not None else "none"),
            ("restarts", st.restarts),
            ("disk", "-" if st.disk_free_mb is None else
             f"{st.disk_free_mb:,.{1 if st.disk_free_mb < 10 else 0}f} MiB free in the run dir's file system")]
    if st.depth_stage:
        rows.append(("depth", st.depth_stage))
    if st.target_step is not None:
        rows.append(("to target", f"{st.target_name or 'target'} reached at step {st.target_step}, "
                                  f"{duration(st.target_seconds)} after the start ({st.target_samples:,} samples)"))
    if st.weights_from and not (st.reason or "").startswith("imported"):
        rows.append(("weights", f"started from {st.weights_from}"))
    for skipped in st.checkpoint_skipped:  # the step above is the newest a resume or an eval would use
        rows.append(("SKIPPED", f"checkpoint {skipped}"))
    if st.compiled is not None:  # train.compile = "auto" chose
        rows.append(("compile", ("compiled" if st.compiled else "eager")
                     + (f": {st.compile_reason}" if st.compile_reason else " (train.compile = 'auto', its checkpoint)")))
    if st.disk_warning:
        rows.append(("WARNING", f"disk low: {st.disk_warning}"))
    if st.config_error:
        rows.append(("CONFIG", f"corrupt: {st.config_error}"))
    return rows


def _rank_text(s: rank_files.RankStatus, health: str, now: float) -> str:
    """One rank: where it runs, its step, and either how long ago it ended or what it is doing and how fresh
    its heartbeat is (an ended rank's heartbeat age would only count the time since)."""
    wait = rank_files.wait_share(s) if s.step_s is not None else None
    where = f"{health}: {s.host} pid {s.pid} {s.device}, at step {s.step}"
    if s.ended:
        return where + f", ended {duration(s.age(now))} ago" + (f": {s.reason}" if s.reason else "")
    last = f"; last step {s.step_s:.2f}s, {100 * wait:.0f}% of it waiting for the others" if wait is not None else ""
    return where + f" ({s.phase}){last}; heartbeat {duration(s.age(now))} old"
