"""A run's own config: the file in its run dir, the config a start resolves to, and what may change on resume.

``resolve_run_config`` is the one check both the worker and ``trm-tui`` make before anything is written:
a new run must not land on an old one, and a resumed run keeps its math. It reads only files (no torch),
so a front end can validate a start without importing the trainer.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import tomli_w

from trm_core.config.resolve import check_new_run, load_toml, parse_set, resolve, resolve_key
from trm_core.config.schema import Config, ConfigError
from trm_core.rundir import layout, lifecycle

# Keys a resumed run may change: none of them changes the model, the data or the optimizer. Two still
# touch the numbers, as the user guide says: epochs/max_steps move the end of the cosine schedule, and
# device/micro_batch_size change floating-point rounding (bf16 on CUDA, summation order).
SAFE_ON_RESUME: frozenset[str] = frozenset({
    "train.epochs", "train.max_steps", "train.micro_batch_size", "train.compile", "train.compile_mode",
    "train.threads", "train.log_every", "train.eval_every", "train.eval_batches", "train.eval_save_predictions", "train.checkpoint_every",
    "train.checkpoint_every_epochs", "train.target_score", "train.target_name",
    "train.keep_checkpoints", "train.step_timeout_s", "train.heartbeat_s", "train.device", "model.halt_in_eval",
    "supervisor.max_restarts", "supervisor.restart_window_s", "supervisor.restart_backoff_s",
    "supervisor.stop_grace_s", "supervisor.stall_after_s",
    "autotune.memory_margin", "autotune.memory_limit_mb", "autotune.allow_batch_change", "autotune.max_batch_size",
    "autotune.max_seconds", "autotune.warmup_steps", "autotune.measure_steps", "autotune.min_gain",
    "autotune.keep_pinned",
    "alerts.command", "alerts.on", "alerts.min_interval_s", "alerts.timeout_s",
    # the world may grow or shrink on resume: same global batch, another reduction order (an event says so)
    "distributed.nproc_per_node", "distributed.nnodes", "distributed.node_rank", "distributed.rdzv_endpoint",
    "distributed.backend", "export.tensorboard_dir",
    # how the model answers at eval, never how it trains
    "eval.supervision_steps", "eval.halt", "eval.trajectories", "eval.noise", "eval.select", "eval.settle",
    "eval.seed", "eval.escalate", "eval.in_training",
})


def saved_config(run_dir: Path, sets: list[str] | tuple[str, ...] = ()) -> Config:
    """A run's own config: its config.toml with the defaults filled in, as its worker resolved it (no
    environment layer), ``sets`` over it. Raises ConfigError naming the file when it does not read."""
    return resolve(base=read_run_config(layout.RunDir.at(run_dir).config), env={}, sets=sets)


def config_problem(run_dir: Path) -> str | None:
    """Why a run's own config.toml cannot be used (missing, not TOML, a bad value), with how to fix it; None
    when it resolves. A run whose config does not read cannot be resumed: every front end says so first."""
    try:
        saved_config(run_dir)
        return None
    except ConfigError as exc:
        return (f"{exc}; fix it by hand, or put back the config the run started with: trm-tui export config "
                f"--run-dir {run_dir} --restore")


def check_resume_overrides(sets: list[str] | tuple[str, ...], preset: str | None) -> None:
    """On resume only math-neutral keys may change; say which ones are allowed."""
    if preset:
        raise ConfigError("--preset cannot be combined with --resume: a run keeps its own config")
    for item in sets:
        key, _ = parse_set(item)
        resolve_key(key, f"--set {item}")
        if key not in SAFE_ON_RESUME:
            raise ConfigError(f"--set {item}: {key} cannot change on resume (it would change the math of the "
                              f"run); keys that can: {', '.join(sorted(SAFE_ON_RESUME))}")


def resumed_config(args: argparse.Namespace) -> Config:
    """The config a resume runs with: the run's own, with the flags given applied. The command that started
    the run, re-run with --resume, is accepted (its --preset/--config/--set resolve to the run's own
    settings); only a real change of a key that would change the math is refused, naming each one."""
    saved_tables = read_run_config(args.run_dir / layout.RUN_CONFIG)
    saved = resolve(base=saved_tables, env={})
    if args.preset or args.config:
        wanted = resolve(config_file=args.config, preset=args.preset, sets=args.sets, env={})
    else:
        wanted = resolve(base=saved_tables, env={}, sets=args.sets)
    before, after = saved.to_dict(), wanted.to_dict()
    changed = [f"{section}.{key} cannot change on resume (the run has {before[section][key]!r}, this start "
               f"asks for {after[section][key]!r})"
               for section in after for key in after[section]
               if after[section][key] != before[section][key] and f"{section}.{key}" not in SAFE_ON_RESUME]
    if changed:
        raise ConfigError(f"--resume: {'; '.join(changed)}: that would change the math of the run. Drop "
                          f"{'that change' if len(changed) == 1 else 'those changes'} to resume (docs/config.md "
                          f"marks the keys a resume may change), or start a new run in another --run-dir")
    return wanted


def write_config(cfg: Config, path: Path) -> None:
    """Write the resolved config atomically so a crash never leaves half a file."""
    layout.write_atomic(path, tomli_w.dumps(cfg.to_dict()).encode())


def read_run_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path} does not exist: nothing to resume in this run dir")
    return load_toml(path)


def resolve_run_config(args: argparse.Namespace, joining: bool = False) -> Config:
    """The config a start of ``args.run_dir`` will use (``run_dir``, ``resume``, ``sets``, ``preset``,
    ``config``, as the worker's and trm-tui's flags give them); raises ConfigError before anything is written.
    ``joining``: a rank of a group, or a node other than node 0, joins a start that node 0's launcher has
    already checked (another rank may have written the run's config by now)."""
    run_dir: Path = args.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder; give a folder for the run")
    if args.resume:
        return resumed_config(args)
    cfg = resolve(config_file=args.config, preset=args.preset, sets=args.sets)
    check_new_run(cfg)
    if joining or cfg.distributed.node_rank > 0:  # node 0 checks the run dir; the others join its start
        return cfg
    if lifecycle.holds_run(run_dir):
        raise ConfigError(f"run dir {run_dir} already holds a run; use --resume to continue it, "
                          f"or choose another --run-dir")
    if (run_dir / layout.RUN_CONFIG).exists():  # prepared by `trm-tui autotune` before training: never overwrite it
        raise ConfigError(f"run dir {run_dir} holds a prepared {layout.RUN_CONFIG} (from trm-tui autotune); "
                          f"start it with --resume, or choose another --run-dir")
    return cfg
