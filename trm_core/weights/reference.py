"""The reference implementation's checkpoints (SamsungSAILMontreal/TinyRecursiveModels) in our model.

Its ``pretrain.py`` saves ``torch.save(model.state_dict())`` as ``step_N`` beside ``all_config.yaml`` (the
``PretrainConfig`` it trained with, ``yaml.dump``-ed). The state dict is the compiled ``ACTLossHead``'s, so its keys
read ``_orig_mod.model.inner.<name>`` (``model.inner.<name>`` when it ran uncompiled). Every name maps to one of
ours by ``KEY_MAP`` (``bench/reference_parity.py`` checks with the reference's own code that the mapped weights give
the same logits, halting logits and gradients); a checkpoint with a name the map does not know, one our model
would lack, or a tensor of another shape is refused, naming each.

The yaml gives the architecture and the recipe; the dataset gives what the reference read from it at start
(sequence length, vocabulary, puzzle identifiers), and is checked against the weights' own shapes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from trm_core.config import Config, ConfigError, resolve

# The reference's name (after "model.inner.") -> ours; every key of both sides matches exactly once.
KEY_MAP: list[tuple[str, str]] = [
    (r"embed_tokens\.embedding_weight", "embed_tokens.weight"),
    (r"lm_head\.weight", "lm_head.weight"),
    (r"q_head\.(weight|bias)", r"q_head.\1"),
    (r"puzzle_emb\.weights", "puzzle_emb.weights"),
    (r"H_init", "y_init"),  # z_H is the answer y
    (r"L_init", "z_init"),  # z_L is the latent z
    (r"L_level\.layers\.(\d+)\.self_attn\.qkv_proj\.weight", r"net.blocks.\1.attention.qkv.weight"),
    (r"L_level\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"net.blocks.\1.attention.out.weight"),
    (r"L_level\.layers\.(\d+)\.mlp_t\.gate_up_proj\.weight", r"net.blocks.\1.token_mlp.gate_up.weight"),
    (r"L_level\.layers\.(\d+)\.mlp_t\.down_proj\.weight", r"net.blocks.\1.token_mlp.down.weight"),
    (r"L_level\.layers\.(\d+)\.mlp\.gate_up_proj\.weight", r"net.blocks.\1.mlp.gate_up.weight"),
    (r"L_level\.layers\.(\d+)\.mlp\.down_proj\.weight", r"net.blocks.\1.mlp.down.weight"),
]
PREFIXES = ("_orig_mod.model.inner.", "model.inner.")  # compiled (as pretrain.py trains), then uncompiled
ARCH_NAME = "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1"
LOSS_TYPES = {"stablemax_cross_entropy": "stablemax", "softmax_cross_entropy": "softmax"}


def our_name(reference_key: str) -> str | None:
    """Our weight's name for one of the reference's state-dict keys; None when the map does not know it."""
    inner = next((reference_key[len(p):] for p in PREFIXES if reference_key.startswith(p)), None)
    if inner is None:
        return None
    hits = [re.sub(p, r, inner) for p, r in KEY_MAP if re.fullmatch(p, inner)]
    return hits[0] if len(hits) == 1 else None


def reference_name(ours: str, prefix: str = PREFIXES[0]) -> str:
    """The inverse: the key the reference's compiled model saves our weight ``ours`` under (tests write the
    reference's layout with it)."""
    for pattern, replacement in KEY_MAP:
        m = re.fullmatch(r"(\d+|weight|bias)".join(re.escape(part) for part in replacement.split("\\1")), ours)
        if m:
            inner = re.sub(r"\([^)]*\)", m.group(1) if m.groups() else "", pattern, count=1)
            return prefix + inner.replace("\\.", ".")
    raise KeyError(f"{ours}: not a weight of the reference's TRM")


def convert(reference_state: dict[str, Any], expected: dict[str, Any], where: str) -> dict[str, Any]:
    """The reference's weights under our names, checked against ``expected`` (our model's state dict, or its
    shapes: ``tensor_checks.meta_shapes``): every key mapped, none missing, every shape equal; a ``ConfigError``
    naming each problem otherwise."""
    expected = {name: tuple(getattr(t, "shape", t)) for name, t in expected.items()}
    problems, converted = [], {}
    for key, tensor in reference_state.items():
        name = our_name(key)
        if name is None:
            problems.append(f"{key}: not a weight of the reference's TRM this importer knows")
        elif name not in expected:
            problems.append(f"{key} ({name}): our model for this config has no such weight")
        elif tuple(tensor.shape) != expected[name]:
            problems.append(f"{key}: shape {tuple(tensor.shape)}, the config's model wants {expected[name]}")
        else:
            converted[name] = tensor
    missing = sorted(set(expected) - set(converted) - {our_name(k) for k in reference_state})
    problems += [f"{name}: not in the checkpoint" for name in missing]
    from trm_core.weights.tensor_checks import refuse  # torch's module: this one reads yaml without it

    refuse(problems, where, "does not fit the reference's TRM as its config describes it", shown=8)
    return converted


def read_reference_yaml(path: Path) -> dict[str, Any]:
    """all_config.yaml as a dict; a ConfigError naming the file (and the line, for YAML that does not parse)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (the reference writes all_config.yaml beside its checkpoints; "
                          f"give it with --config)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} not YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("arch"), dict):
        raise ConfigError(f"{path}: not the reference's all_config.yaml (no 'arch' section)")
    return data


def config_of(keys: dict[str, Any], where: str) -> Config:
    """A config from ``section.key`` values over the defaults (no file, no environment); an error names ``where``."""
    tables: dict[str, dict[str, Any]] = {}
    for dotted, value in keys.items():
        section, key = dotted.split(".", 1)
        tables.setdefault(section, {})[key] = value
    try:
        return resolve(base=tables, env={})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {str(exc).replace('saved run config: ', '')}") from None


def reference_config(data: dict[str, Any], dataset_dir: str, where: str) -> Config:
    """Our config for the reference's ``all_config.yaml`` ``data``, reading ``dataset_dir``."""
    return config_of(reference_sets(data, where) | {"data.dataset_dir": dataset_dir}, where)


def reference_sets(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Our config's keys for the reference's ``all_config.yaml`` ``data`` (refused by name where our TRM differs):
    the network and its sizes, halting, the puzzle embedding, the loss and the recipe; ``train.ema_decay`` 0, as
    the saved weights are the ones the reference evaluated (its EMA copy, when it kept one)."""
    arch = data["arch"]

    def need(key: str) -> Any:
        if key not in arch:
            raise ConfigError(f"{where}: arch.{key} is missing")
        return arch[key]

    def given(key: str, default: Any) -> Any:
        """The yaml's value, or ``default`` where it leaves the key out (None: the key is needed)."""
        return need(key) if default is None or key in arch else default

    def whole(key: str, least: int = 1, default: int | None = None) -> int:
        """A whole number as the yaml wrote it: 16 or 16.0, never 16.7, "sixteen", [16], null or true."""
        value = given(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                isinstance(value, float) and not value.is_integer():  # inf and NaN too
            raise ConfigError(f"{where}: arch.{key} = {value!r}: expected a whole number")
        if value < least:
            raise ConfigError(f"{where}: arch.{key} = {value!r}: must be at least {least}")
        return int(value)

    def number(key: str, low: float, high: float, default: float | None = None) -> float:
        value = given(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ConfigError(f"{where}: arch.{key} = {value!r}: expected a number from {low:g} to {high:g}")
        return float(value)

    def word(key: str, default: str | None = None) -> str:
        value = given(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: arch.{key} = {value!r}: expected a name")
        return value

    if word("name", ARCH_NAME) != ARCH_NAME:
        raise ConfigError(f"{where}: arch.name = {arch.get('name')!r}: only the reference's TRM ({ARCH_NAME}) "
                          f"imports (HRM and the variants have other weights)")
    for key, wanted in (("H_layers", 0), ("rms_norm_eps", 1e-5), ("rope_theta", 10000.0)):
        if key in arch and arch[key] != wanted:
            raise ConfigError(f"{where}: arch.{key} = {arch[key]!r}: our TRM has {wanted!r}")
    pos = word("pos_encodings")
    mlp_t = arch.get("mlp_t", False)
    if not isinstance(mlp_t, bool):
        raise ConfigError(f"{where}: arch.mlp_t = {mlp_t!r}: expected true or false")
    if pos not in ("rope", "none") and not mlp_t:
        raise ConfigError(f"{where}: arch.pos_encodings = {pos!r}: ours are 'rope' and 'none'")
    hidden = whole("hidden_size")
    ndim = whole("puzzle_emb_ndim", least=0, default=0)
    if ndim not in (0, hidden):
        raise ConfigError(f"{where}: arch.puzzle_emb_ndim = {ndim}: ours is the hidden size ({hidden}) or 0")
    prefix = 0 if ndim == 0 else whole("puzzle_emb_len", least=0, default=16) or math.ceil(ndim / hidden)
    loss_section = arch.get("loss", {})
    if not isinstance(loss_section, dict):
        raise ConfigError(f"{where}: arch.loss = {loss_section!r}: expected a section (loss_type: ...)")
    loss = loss_section.get("loss_type", "stablemax_cross_entropy")
    if not isinstance(loss, str) or loss not in LOSS_TYPES:
        raise ConfigError(f"{where}: arch.loss.loss_type = {loss!r}: expected one of {', '.join(LOSS_TYPES)}")
    sets = {
        "model.net": "mlp_t" if mlp_t else "attention", "model.dim": hidden, "model.depth": whole("L_layers"),
        "model.refinement_blocks": whole("H_cycles"), "model.latent_steps": whole("L_cycles"),
        "model.max_supervision_steps": whole("halt_max_steps"), "model.num_heads": whole("num_heads"),
        "model.expansion": number("expansion", 1e-6, 1e6), "model.pos_encoding": "none" if mlp_t else pos,
        "model.puzzle_emb_len": prefix, "model.halt_exploration": number("halt_exploration_prob", 0.0, 1.0, 0.0),
        "model.halt_loss_weight": 0.5, "data.kind": "puzzles",
        "train.carry": "refill", "train.loss": LOSS_TYPES[loss], "train.optimizer": "adam_atan2",
        "train.ema_decay": 0.0, "train.max_steps": 0, "train.grad_clip": 0.0,
    }
    recipe = {"global_batch_size": "train.batch_size", "lr": "train.learning_rate", "lr_min_ratio":
              "train.min_lr_ratio", "lr_warmup_steps": "train.warmup_steps", "beta1": "train.adam_beta1",
              "beta2": "train.adam_beta2", "weight_decay": "train.weight_decay", "puzzle_emb_lr":
              "train.puzzle_emb_lr", "puzzle_emb_weight_decay": "train.puzzle_emb_weight_decay", "epochs":
              "train.epochs"}
    return sets | {ours: data[theirs] for theirs, ours in recipe.items() if data.get(theirs) is not None}
