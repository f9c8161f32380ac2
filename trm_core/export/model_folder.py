"""A run's model written as a folder a Hugging Face repository can hold (its reading and checking live with
the other weights from elsewhere, ``weights/model_folder.py``): ``model.safetensors`` (the weights; loading
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

from trm_core.config.schema import DATA_COMMANDS
from trm_core.evaluate.loaded import LoadedCheckpoint, eval_scores
from trm_core.evaluate.tasks import task_of
from trm_core.weights.model_folder import CONFIG_FILE, FORMAT, VERSION, WEIGHTS_FILE

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
    lines += ["", "## Use", "", "```python", "from trm_core.weights.model_folder import load_model_folder",
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
