"""One start request: which run, on which node, from which config layers, new or resumed.

Every process of a start (``trm-tui``, the run's keeper, a node's launcher, the worker and its ranks) takes
the same flags and builds one ``Start`` from them, once; it hands the start on as flags (``to_argv``) and
asks it for the config (``resolve``) and the run's folders (``rundir``). Nothing else parses start flags or
decides which node a start is for, so a key set anywhere (``--set``, ``--config``, ``./config.toml``,
``TRM_DISTRIBUTED_NODE_RANK``) means the same in every process.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from trm_core.config.resolve import resolve
from trm_core.config.run_config import resolve_run_config, saved_config
from trm_core.config.schema import AlertsConfig, Config, ConfigError, ExportConfig, SupervisorConfig
from trm_core.rundir.layout import RunDir
from trm_core.rundir.ownership import owned_by


def add_start_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that describe a start (new or resumed): the worker, the keeper and trm-tui take the same."""
    p.add_argument("--config", type=Path, help="config file (default: ./config.toml when present)")
    from trm_core.config.schema import BUILTIN_PRESETS

    p.add_argument("--preset", metavar="NAME", help="apply [presets.NAME] over the config file; built in (each "
                   f"described in config.toml): {', '.join(BUILTIN_PRESETS)}")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config key (repeatable); wins over file, preset and environment")
    p.add_argument("--resume", action="store_true", help="continue the run from its newest good checkpoint")
    p.add_argument("--init-from", metavar="RUN[:STEP]|DIR|hf:REPO", help="a new run: start from these weights "
                   "(train.init_from: a run's checkpoint, a model folder, a hub repository)")


@dataclass(frozen=True)
class Start:
    """A start of the run at ``root`` on node ``node``: the config layers it names, and whether it resumes."""

    root: Path
    node: int = 0
    config_file: Path | None = None
    preset: str | None = None
    sets: tuple[str, ...] = ()
    resume: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Start":
        """From parsed start flags (``add_start_arguments``) and ``--run-dir``: the run's root, or a node's
        control folder (``ROOT/nodes/node-N``, where a keeper or launcher of node N is told to run)."""
        named = RunDir.at(args.run_dir)
        init = getattr(args, "init_from", None)
        sets = tuple(args.sets) + ((f"train.init_from={init!r}",) if init else ())
        start = cls(named.root, named.node, args.config, args.preset, sets, args.resume)
        return replace(start, node=start._node_rank(named.node))

    @classmethod
    def from_argv(cls, run_dir: Path, argv: Sequence[str]) -> "Start":
        """From start flags as another process hands them on (``to_argv``); refuses flags it does not know."""
        parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
        add_start_arguments(parser)
        try:
            args = parser.parse_args(list(argv))
        except (argparse.ArgumentError, SystemExit) as exc:
            raise ConfigError(f"not start flags: {' '.join(argv)}: {exc}") from None
        args.run_dir = run_dir
        return cls.from_args(args)

    @classmethod
    def resuming(cls, run: RunDir) -> "Start":
        """What a restart or a revived keeper launches: the run's saved config, on the same node."""
        return cls(run.root, run.node, sets=cls._node_flags_of(run.node), resume=True)

    def _node_rank(self, named: int) -> int:
        """The node this start runs on (``distributed.node_rank``); when the layers do not resolve (the full
        check, ``resolve``, says why), the node the folder named (0 for a run's root)."""
        try:
            return self.layers().distributed.node_rank
        except ConfigError:
            return named

    @staticmethod
    def _node_flags_of(node: int) -> tuple[str, ...]:
        return (f"distributed.node_rank={node}",) if node else ()

    @property
    def rundir(self) -> RunDir:
        return RunDir(self.root, self.node)

    @property
    def describes_run(self) -> bool:
        """Flags that say what to train or to resume; without them ``trm-tui`` opens a run as it is."""
        return bool(self.config_file or self.preset or self.sets or self.resume)

    def to_argv(self) -> list[str]:
        """The start as flags, to hand on to another process (``--run-dir`` is the spawner's to add)."""
        argv: list[str] = []
        if self.config_file:
            argv += ["--config", str(self.config_file)]
        if self.preset:
            argv += ["--preset", self.preset]
        for item in self.sets:
            argv += ["--set", item]
        if self.resume:
            argv.append("--resume")
        return argv

    def layers(self) -> Config:
        """The config the flags' layers give, without the run dir's checks (defaults < file < preset <
        environment < --set)."""
        return resolve(config_file=self.config_file, preset=self.preset, sets=self.sets)

    def resolve(self, joining: bool = False) -> Config:
        """The config this start runs with, checked against the run dir (a new run must not land on an old
        one; a resume keeps its math); raises ConfigError before anything is written. ``joining``: a rank of
        a group, or a node other than node 0, joins a start that node 0's launcher has already checked."""
        return resolve_run_config(self._namespace(), joining=joining)

    def restarted(self) -> "Start":
        """What a restart of this start launches: the run's saved config, with this node's own
        ``distributed.*`` flags (its node_rank) repeated."""
        return replace(self, config_file=None, preset=None, resume=True,
                       sets=tuple(s for s in self.sets if s.startswith("distributed.")))

    def keeper_settings(self) -> tuple[SupervisorConfig, AlertsConfig, ExportConfig]:
        """The run's own [supervisor], [alerts] and [export] settings: from its config.toml (with --set on
        resume), or, for a new run, from the same layers the worker resolves. Defaults when they cannot be
        read (the worker says why)."""
        defaults = SupervisorConfig(), AlertsConfig(), ExportConfig()
        try:
            if self.rundir.config.exists():
                if not owned_by(self.rundir.config, os.geteuid()):
                    # someone else's file in the run (a folder others may write): its commands never run here
                    return defaults
                sets = [s for s in self.sets if s.startswith(("supervisor.", "alerts.", "export."))] if self.resume else []
                cfg = saved_config(self.rundir.root, sets)
            else:
                cfg = self.layers()
            return cfg.supervisor, cfg.alerts, cfg.export
        except ConfigError:
            return defaults

    def _namespace(self) -> argparse.Namespace:
        return argparse.Namespace(run_dir=self.root, config=self.config_file, preset=self.preset,
                                  sets=list(self.sets), resume=self.resume)


def saved_settings(run_dir: Path) -> SupervisorConfig:
    """The supervisor settings of an existing run (its own config.toml), defaults when there is none."""
    try:
        return saved_config(run_dir).supervisor
    except ConfigError:
        return SupervisorConfig()
