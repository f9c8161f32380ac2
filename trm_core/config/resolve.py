"""Resolving a config from its layers, with validation that names the problem.

Layering, lowest first: built-in defaults < config file < preset < environment (``TRM_SECTION_KEY``)
< ``--set section.key=value``. Every layer goes through the same validation, so a typo anywhere gives
the same clear message (key, value, what is allowed) instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from trm_core.config.schema import ALERT_KINDS, BUILTIN_PRESETS, SECTIONS, Config, ConfigError


def _section_fields(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(SECTIONS[section])}


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def resolve_key(dotted: str, source: str) -> tuple[str, str]:
    if "." not in dotted:
        raise ConfigError(f"{source}: '{dotted}' is not a config key; keys look like section.key, "
                          f"sections: {', '.join(SECTIONS)}")
    section, key = dotted.split(".", 1)
    if section not in SECTIONS:
        raise ConfigError(f"{source}: unknown section '{section}'{_did_you_mean(section, list(SECTIONS))}; "
                          f"sections: {', '.join(SECTIONS)}")
    fields = _section_fields(section)
    if key not in fields:
        raise ConfigError(f"{source}: unknown key '{section}.{key}'"
                          f"{_did_you_mean(key, list(fields))}; keys in [{section}]: {', '.join(fields)}")
    return section, key


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            list: "a list of strings"}[t]


def _coerce(section: str, key: str, value: Any, source: str) -> Any:
    """Check one value against its field's type and range; return it in the field's type."""
    f = _section_fields(section)[key]
    t = {"int": int, "float": float, "bool": bool, "str": str, "list": list}.get(f.type, f.type) \
        if isinstance(f.type, str) else f.type
    name = f"{section}.{key}"
    value = _as_type(t, value, ConfigError(f"{source}: {name} = {value!r} is not {_type_name(t)}"))
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        allowed = ", ".join(repr(c) for c in meta["choices"])
        raise ConfigError(f"{source}: {name} = {value!r} is not allowed; choose one of {allowed}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_range(value, meta, f"{source}: {name} = {value!r}")
    return value


def _as_type(t: type, value: Any, bad: ConfigError) -> Any:
    """``value`` as type ``t`` (an int is a float; "a,b" is a list), or ``bad`` raised: a bool is no number."""
    if t is bool:
        if not isinstance(value, bool):
            raise bad
    elif t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
    elif t is str:
        if not isinstance(value, str):
            raise bad
    elif t is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
    return value


def _check_range(value: float, meta: Any, what: str) -> None:
    """A number's field bounds (min, max, above), and that it is finite."""
    lo, hi, above = meta.get("min"), meta.get("max"), meta.get("above")
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{what} must be a finite number")
    if lo is not None and value < lo:
        raise ConfigError(f"{what} is out of range; it must be >= {lo}")
    if above is not None and value <= above:
        raise ConfigError(f"{what} is out of range; it must be > {above}")
    if hi is not None and value > hi:
        raise ConfigError(f"{what} is out of range; it must be <= {hi}")


# a shell command the keeper runs: only from what the user wrote (a file, --set), kept in the run's config.toml
NOT_FROM_ENVIRONMENT = frozenset({"alerts.command"})


def parse_scalar(text: str) -> Any:
    """Parse a command-line or environment value as TOML (numbers, booleans, lists), else a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    key, _, raw = item.partition("=")
    return key.strip(), parse_scalar(raw.strip())


class Layers:
    """Collects overrides layer by layer, validating each value as it arrives."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}

    def apply_tables(self, tables: Mapping[str, Any], source: str) -> None:
        for section, body in tables.items():
            if section == "presets":
                continue
            if not isinstance(body, Mapping):
                resolve_key(section, source)  # raises with a clear message for a bare key
                raise ConfigError(f"{source}: [{section}] must be a table")
            for key, value in body.items():
                self.set(f"{section}.{key}", value, source)

    def set(self, dotted: str, value: Any, source: str) -> None:
        if dotted == "train.bf16":  # the key train.precision replaced: read, and said so
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: train.bf16 = {value!r} is not true or false")
            dotted, value = "train.precision", "autocast" if value else "fp32"
            if source != "saved run config":  # a run's own file: read silently, rewritten at its next start
                print(f"warning: {source}: train.bf16 is deprecated; read as train.precision = {value!r}, which "
                      f"is what to write instead", file=sys.stderr)
        if dotted == "train.compile" and isinstance(value, bool):  # its spelling before "auto": still right
            value = "on" if value else "off"
        section, key = resolve_key(dotted, source)
        self.values[section][key] = _coerce(section, key, value, source)

    def build(self) -> Config:
        cfg = Config(**{s: SECTIONS[s](**self.values[s]) for s in SECTIONS})
        validate(cfg)
        return cfg


def validate(cfg: Config) -> None:
    """Checks that span several keys, or the items of a list."""
    unknown = [kind for kind in cfg.alerts.on if kind not in ALERT_KINDS]
    if unknown:
        raise ConfigError(f"alerts.on: {unknown[0]!r} is not an alert; choose from {', '.join(ALERT_KINDS)}")
    t = cfg.train
    check_world(cfg)
    share = cfg.rank_batch
    if t.micro_batch_size and share % t.micro_batch_size:
        whose = f"train.batch_size = {t.batch_size}" if share == t.batch_size else \
            f"each rank's {share} samples (train.batch_size = {t.batch_size} over {cfg.distributed.world_size} ranks)"
        raise ConfigError(f"train.micro_batch_size = {t.micro_batch_size} does not divide {whose}; "
                          f"choose a divisor of {share}")
    if t.device not in ("auto", "cpu", "cuda") and not (t.device.startswith("cuda:") and t.device[5:].isdigit()):
        raise ConfigError(f"train.device = {t.device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    check_model(cfg)
    check_eval(cfg)
    from trm_core.config.curriculum import check_curriculum

    check_curriculum(t.depth_schedule, t.supervision_weights, t.grad_recursions, cfg.model.max_supervision_steps,
                     cfg.model.refinement_blocks, cfg.model.latent_steps)
    for what in ("eval_every", "checkpoint_every"):
        steps, epochs = getattr(t, what), getattr(t, f"{what}_epochs")
        if steps and epochs:
            raise ConfigError(f"train.{what} = {steps} and train.{what}_epochs = {epochs}: count in steps or in "
                              f"epochs, not both (set train.{what} = 0 to count in epochs)")
    if not (t.checkpoint_every or t.checkpoint_every_epochs):
        raise ConfigError("train.checkpoint_every = 0 and train.checkpoint_every_epochs = 0: a run must save "
                          "checkpoints; set one of them")
    if cfg.data.kind == "pairs" and not cfg.data.pairs_file:
        raise ConfigError("data.pairs_file is empty but data.kind = 'pairs' needs a JSONL file")


def check_new_run(cfg: Config) -> None:
    """What a new run must satisfy that a run already on disk was allowed (its saved config still reads)."""
    t = cfg.train
    if t.eval_every_epochs and not t.max_steps and t.epochs % t.eval_every_epochs:
        # the reference's pretrain.py line 567: assert config.epochs % train_epochs_per_iter == 0
        lower, upper = t.epochs // t.eval_every_epochs * t.eval_every_epochs, \
            (t.epochs // t.eval_every_epochs + 1) * t.eval_every_epochs
        choices = f"{lower} or {upper}" if lower else f"{upper}"
        raise ConfigError(f"train.epochs = {t.epochs} is not a multiple of train.eval_every_epochs = "
                          f"{t.eval_every_epochs}: the run would end inside an eval interval (the reference refuses "
                          f"this too); use train.epochs = {choices}, or another interval")


def check_model(cfg: Config) -> None:
    """The network's keys against each other (and the precision it is asked to run in)."""
    m = cfg.model
    for key, factor in (("expansion_factor", m.expansion_factor), ("expansion_factor_token", m.expansion_factor_token)):
        if int(factor * m.dim) < 1:
            raise ConfigError(f"model.{key} = {factor} gives a hidden width of {int(factor * m.dim)} with "
                              f"model.dim = {m.dim}; it must be at least 1 / dim = {1 / m.dim:g}")
    if m.net == "attention" and m.dim % m.num_heads:
        raise ConfigError(f"model.num_heads = {m.num_heads} does not divide model.dim = {m.dim}")
    if m.net == "attention" and m.pos_encoding == "rope" and (m.dim // m.num_heads) % 2:
        raise ConfigError(f"model.pos_encoding = 'rope' needs an even head width; model.dim / model.num_heads = "
                          f"{m.dim // m.num_heads}")
    if cfg.train.precision == "bf16" and m.net == "mixer":
        raise ConfigError("train.precision = 'bf16' is the reference's bf16 forward, for its networks (model.net = "
                          "'attention' or 'mlp_t'); the mixer runs 'autocast' or 'fp32'")


def check_world(cfg: Config) -> None:
    """The [distributed] keys against each other and against the batch."""
    d = cfg.distributed
    if d.node_rank >= d.nnodes:
        raise ConfigError(f"distributed.node_rank = {d.node_rank} must be below distributed.nnodes = {d.nnodes}")
    if d.nnodes > 1 and not d.rdzv_endpoint:
        raise ConfigError(f"distributed.nnodes = {d.nnodes} needs distributed.rdzv_endpoint: host:port of the "
                          f"rendezvous (node 0's address and a free port), the same on every node")
    if d.rdzv_endpoint:
        host, _, port = d.rdzv_endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"distributed.rdzv_endpoint = {d.rdzv_endpoint!r} is not host:port (for example "
                              f"'10.0.0.1:29500')")
    if cfg.train.batch_size % d.world_size:
        raise ConfigError(f"train.batch_size = {cfg.train.batch_size} does not split evenly over "
                          f"{d.world_size} ranks (distributed.nproc_per_node x distributed.nnodes); choose a "
                          f"multiple of {d.world_size}")
    if d.world_size > 1 and cfg.train.device.startswith("cuda:"):
        raise ConfigError(f"train.device = {cfg.train.device!r} names one GPU, but {d.world_size} ranks each take "
                          f"their own (rank N on a node uses cuda:N); use 'auto' or 'cuda'")


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def resolve(config_file: Path | None = None, preset: str | None = None,
            env: Mapping[str, str] | None = None, sets: list[str] | tuple[str, ...] = (),
            base: Mapping[str, Any] | None = None, default_file: Path = Path("config.toml")) -> Config:
    """Resolve a config from every layer. ``base`` replaces defaults+file (used on resume)."""
    layers = Layers()
    file_tables: dict[str, Any] = {}
    if base is not None:
        layers.apply_tables(base, "saved run config")
    else:
        path = config_file if config_file is not None else (default_file if default_file.exists() else None)
        if path is not None:
            file_tables = load_toml(Path(path))
            layers.apply_tables(file_tables, str(path))
    if preset:
        file_presets = file_tables.get("presets") or {}
        if not isinstance(file_presets, Mapping) or not all(isinstance(v, Mapping) for v in file_presets.values()):
            raise ConfigError(f"{config_file or default_file}: [presets] must hold tables like [presets.NAME.train]")
        presets = {**BUILTIN_PRESETS, **file_presets}
        if preset not in presets:
            raise ConfigError(f"unknown preset '{preset}'{_did_you_mean(preset, list(presets))}; "
                              f"presets: {', '.join(sorted(presets))}")
        layers.apply_tables(presets[preset], f"preset '{preset}'")
    for name, raw in sorted((env if env is not None else os.environ).items()):
        if not name.startswith("TRM_"):
            continue
        rest = name[4:].lower()
        section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue  # TRM_TEST_* hooks and other tools' variables are not config
        key = f"{section}.{rest[len(section) + 1:]}"
        if key in NOT_FROM_ENVIRONMENT:
            raise ConfigError(f"environment {name}: {key} is read only from a config file or --set, never from "
                              f"the environment (a command the keeper runs must be written down in the run's "
                              f"config); unset {name}")
        layers.set(f"{section}.{rest[len(section) + 1:]}", parse_scalar(raw), f"environment {name}")
    for item in sets:
        key, value = parse_set(item)
        layers.set(key, value, f"--set {item}")
    return layers.build()




def check_eval(cfg: Config) -> None:
    """[eval]: a settle count the trajectories can reach; a halting head to decide who escalates."""
    e = cfg.eval
    if e.escalate and not e.halt and not cfg.model.halt_in_eval:
        raise ConfigError("eval.escalate needs eval.halt (or model.halt_in_eval): the plain trajectory's halting "
                          "head decides which examples get the trajectories")
    if e.settle and not 2 <= e.settle <= e.trajectories:
        raise ConfigError(f"eval.settle = {e.settle} needs 2 .. eval.trajectories ({e.trajectories}) agreeing "
                          f"trajectories; 0 turns it off")
