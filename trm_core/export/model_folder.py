"""A run's model as a folder a Hugging Face repository can hold: ``model.safetensors`` (the weights; loading
runs no code and maps the file), ``config.json`` (the model section and what running it needs: vocabulary,
sequence length, task, the puzzle identifiers' count, the test-time settings) and ``README.md``, a model card
(the task, the eval figures at that step, the recipe, how the data was built).

Written under a temporary name and renamed whole, so a folder under its own name is complete.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from trm_core.config import ConfigError
from trm_core.config.schema import DATA_COMMANDS
from trm_core.evaluate.loaded import LoadedCheckpoint, eval_scores
from trm_core.evaluate.tasks import task_of

FORMAT = "trm-tui-model"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"


def model_config(loaded: LoadedCheckpoint) -> dict[str, Any]:
    """config.json: what builds the network and what its inputs mean."""
    cfg, dataset = loaded.cfg, loaded.dataset
    return {"format": FORMAT, "version": VERSION, "model": dataclasses.asdict(cfg.model),
            "vocab_size": dataset.vocab_size, "seq_len": cfg.model.seq_len,
            "num_puzzle_ids": getattr(dataset, "num_puzzle_ids", 1), "task": task_of(cfg, dataset),
            "data_kind": cfg.data.kind, "loss": cfg.train.loss, "precision": cfg.train.precision,
            "eval": dataclasses.asdict(cfg.eval),
            "trained": {"run": loaded.run.root.name, "step": loaded.info.step, "epoch": loaded.info.epoch,
                        "weights": loaded.weights, "config_hash": loaded.info.config_hash}}


def model_card(loaded: LoadedCheckpoint, config: dict[str, Any]) -> str:
    """README.md: a model card, its front matter the hub's (library, tags), then what the model is for."""
    cfg = loaded.cfg
    scores = eval_scores(loaded.run)
    figure = scores.get(loaded.info.step)
    m = cfg.model
    lines = ["---", "library_name: trm-tui", "tags:", "- tiny-recursive-model", f"- {config['task']}", "---", "",
             f"# {loaded.run.root.name}: a Tiny Recursive Model ({config['task']})", "",
             f"A TRM (arXiv 2510.04871) trained with trm-tui: {m.net} network, dim {m.dim}, depth {m.depth}, "
             f"T = {m.refinement_blocks}, n = {m.latent_steps}, {m.max_supervision_steps} supervision steps, "
             f"{m.seq_len} tokens, vocabulary {config['vocab_size']}. These are its {loaded.weights} weights at "
             f"step {loaded.info.step}.", "", "## Eval", ""]
    if figure is not None:
        label, value, accuracy = figure
        lines.append(f"The run's own held-out eval at step {loaded.info.step}, as trained: {label} {value:.4f}"
                     + (f", token accuracy {accuracy:.4f}" if accuracy is not None else "") + ".")
    else:
        lines.append(f"The run logged no eval at step {loaded.info.step}.")
    t = cfg.train
    lines += ["", "## Training", "",
              f"{t.optimizer}, learning rate {t.learning_rate:g}, batch {t.batch_size}, {t.loss} loss, "
              f"carry {t.carry}, EMA {t.ema_decay:g}, precision {t.precision}."]
    source = weights_source(loaded.run)
    if source:
        lines += ["", f"Its weights started from {source}."]
    lines += ["", "## Data", ""]
    preset = next((name for name, command in DATA_COMMANDS.items()
                   if cfg.data.dataset_dir and cfg.data.dataset_dir.rstrip("/").endswith(
                       command.rsplit("--out ", 1)[-1].strip())), None)
    lines.append(f"Built with: `{DATA_COMMANDS[preset]}`." if preset else
                 f"Data kind `{cfg.data.kind}`; the run read `{cfg.data.dataset_dir or '(built in)'}`.")
    lines += ["", "## Use", "", "```python", "from trm_core.export.model_folder import load_model_folder",
              "model, config = load_model_folder(\"DIR\")  # the network, ready to answer; config.json as a dict",
              "```", ""]
    return "\n".join(lines)


def weights_source(run: Any) -> str | None:
    """Where a run's first weights came from (train.init_from, or trm-tui import), from its newest run_start."""
    from trm_core.rundir import log_queries
    from trm_core.rundir.records import RunStart

    start = log_queries.newest(run.events, RunStart) if run.events.exists() else None
    return start.weights_source if isinstance(start, RunStart) else None


def write_model_folder(loaded: LoadedCheckpoint, out: Path) -> Path:
    """The folder ``out``, whole; refused when it exists and is not empty (nothing there is replaced)."""
    from safetensors.torch import save_file

    from trm_core.prep.output import building

    with building(out) as tmp:
        state = {name: t.detach().to("cpu").contiguous() for name, t in loaded.ev.model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT, "step": str(loaded.info.step)})
        (tmp / WEIGHTS_FILE).chmod(0o644)
        config = model_config(loaded)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        (tmp / CARD_FILE).write_text(model_card(loaded, config))
    return out


def _count(config: dict[str, Any], key: str, where: Path, least: int) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value < 2**31:
        raise ConfigError(f"{where}: \"{key}\" is {json.dumps(value)}; expected a whole number of at least {least}")
    return value


def trained_step(config: dict[str, Any], where: Path) -> int:
    """The step the model was trained to (0 when the folder does not say): a checkpoint's name is made of it."""
    trained = config.get("trained") or {}
    step = trained.get("step", 0) if isinstance(trained, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 10**8:
        raise ConfigError(f"{where}: \"trained\": {{\"step\": {json.dumps(step)}}}; expected a whole number of "
                          f"steps from 0")
    return step


def read_model_config(folder: Path) -> tuple[dict[str, Any], Any, int, int]:
    """config.json, checked as a run's config is (every model key through the schema's validation): (the file,
    the model section as a ModelConfig, the vocabulary, the puzzle identifiers' count)."""
    from trm_core.prep.arc import read_json
    from trm_core.weights.reference import config_of

    path = folder / CONFIG_FILE
    config = read_json(path, "a model folder's; trm-tui export model writes one")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a TRM model's config (its \"format\" is not {FORMAT!r})")
    if not isinstance(config.get("model"), dict):
        raise ConfigError(f"{path}: no \"model\" section")
    model = config_of({f"model.{k}": v for k, v in config["model"].items()}, str(path)).model
    trained_step(config, path)
    return config, model, _count(config, "vocab_size", path, 2), _count(config, "num_puzzle_ids", path, 1)


def load_model_folder(folder: Path | str, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The network a model folder holds, its weights loaded (safetensors: no pickle, no code run), in eval mode,
    and its config.json; a ``ConfigError`` naming what is missing or wrong for a folder that is not one. The
    weights' shapes are compared with the config's model (built on the meta device) before anything is
    allocated, and their values checked (finite) before they answer anything."""
    import torch
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from trm_core.train.model import build_model
    from trm_core.weights.tensor_checks import check_values, meta_shapes, refuse, shape_problems

    folder = Path(folder)
    config, model_cfg, vocab, puzzles = read_model_config(folder)
    weights = folder / WEIGHTS_FILE
    try:
        with safe_open(str(weights), "pt") as header:
            found = {name: tuple(header.get_slice(name).get_shape()) for name in header.keys()}
    except FileNotFoundError:
        raise ConfigError(f"{folder}: no {WEIGHTS_FILE}") from None
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{weights}: not readable safetensors ({exc})") from None
    refuse(shape_problems(found, meta_shapes(model_cfg, vocab, puzzles)), str(weights),
           "its weights do not fit the config's model")
    model = build_model(model_cfg, vocab, puzzles)
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{weights}: not readable safetensors ({exc})") from None
    check_values(state, str(weights))
    model.load_state_dict(state)
    model.to(torch.device(device)).requires_grad_(False).eval()
    return model, config
