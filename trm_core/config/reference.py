"""The shipped ``config.toml`` and ``docs/config.md``, rendered from the schema: every key, its default, its
doc, its allowed range, whether a resume may change it and its environment variable.

``python -m trm_core.config.reference > config.toml`` and ``python -m trm_core.config.reference --markdown >
docs/config.md`` rewrite them; tests keep both files equal to these renderings, so neither can drift from
the fields they describe.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tomli_w

from trm_core.config.schema import BUILTIN_PRESETS, PRESET_NOTES, SECTIONS

HEADER = """\
# trm-tui defaults. Every key with its default and what it does.
# Layering, lowest first: built-in defaults < this file (--config FILE, default ./config.toml)
# < a preset (--preset NAME) < environment TRM_<SECTION>_<KEY> < --set section.key=value.
# The resolved config of each run is written to RUN_DIR/config.toml; --resume reads it from there.
"""

PRESETS_NOTE = """\
# Presets apply over the tables above. These are also built in, so --preset NAME works anywhere;
# a file may add its own as [presets.NAME.SECTION] tables.
"""

COMMENT_COLUMN = 35


def _value(value: Any) -> str:
    if isinstance(value, list):  # one line, as people write them (tomli_w breaks arrays over lines)
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).strip().removeprefix("v = ")


def render() -> str:
    parts = [HEADER]
    for section, cls in SECTIONS.items():
        lines = [f"[{section}]"]
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            assignment = f"{f.name} = {_value(default)}"
            lines.append(f"{assignment.ljust(COMMENT_COLUMN - 1)} # {f.metadata['doc']}")
        parts.append("\n".join(lines) + "\n")
    parts.append(PRESETS_NOTE)
    for name, tables in BUILTIN_PRESETS.items():
        if name in PRESET_NOTES:
            parts.append(f"# {name}: {PRESET_NOTES[name]}")
        for section, values in tables.items():
            body = "\n".join(f"{k} = {_value(v)}" for k, v in values.items())
            parts.append(f"[presets.{name}.{section}]\n{body}\n")
    return "\n".join(parts)


MARKDOWN_HEADER = """\
# Config reference

Generated from the config schema (`trm_core/config/schema.py`) by
`python -m trm_core.config.reference --markdown > docs/config.md`; a test keeps this page equal to the code.

Where a value comes from, lowest first: the built-in default < the config file (`--config FILE`, default
`./config.toml`) < a preset (`--preset NAME`) < the environment variable < `--set section.key=value`. A run's
resolved config is saved in `RUN_DIR/config.toml`; `--resume` reads it from there and accepts changes only to
the keys marked *yes* under "on resume" (the others would change the model, the data or the optimizer).
`alerts.command` has no environment variable: a shell command the keeper runs comes only from what you wrote
(a config file or `--set`), never from an environment a shared machine's modules or job scripts may set.
"""


def allowed(meta: dict[str, Any]) -> str:
    """A field's allowed values, in words."""
    if meta.get("choices"):
        return "one of " + ", ".join(f"`{_value(c)}`" for c in meta["choices"])
    low, high, above = meta.get("min"), meta.get("max"), meta.get("above")
    if above is not None:
        return f"> {above:g}" + (f", ≤ {high:g}" if high is not None else "")
    if low is not None and high is not None:
        return f"{low:g} to {high:g}" if high < 1e15 else f"≥ {low:g}"
    if low is not None:
        return f"≥ {low:g}"
    return f"≤ {high:g}" if high is not None else "any"


def render_markdown() -> str:
    from trm_core.config.resolve import NOT_FROM_ENVIRONMENT
    from trm_core.config.run_config import SAFE_ON_RESUME

    parts = [MARKDOWN_HEADER]
    for section, cls in SECTIONS.items():
        parts.append(f"## [{section}]\n\n| key | default | allowed | on resume | environment | what it does |\n"
                     "|---|---|---|---|---|---|")
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            key = f"{section}.{f.name}"
            doc = f.metadata["doc"].replace("|", "\\|")
            parts.append(f"| `{f.name}` | `{_value(default)}` | {allowed(f.metadata)} | "
                         f"{'yes' if key in SAFE_ON_RESUME else 'no'} | "
                         f"{'never' if key in NOT_FROM_ENVIRONMENT else f'`TRM_{section.upper()}_{f.name.upper()}`'} | "
                         f"{doc} |")
        parts.append("")
    parts.append("## Presets\n\nBuilt in, so `--preset NAME` works from any folder; a config file may add its own "
                 "under `[presets.NAME.SECTION]`.\n")
    for name, tables in BUILTIN_PRESETS.items():
        values = ", ".join(f"`{section}.{k} = {_value(v)}`" for section, t in tables.items() for k, v in t.items())
        note = f" {PRESET_NOTES[name]}." if name in PRESET_NOTES else ""
        parts.append(f"- `{name}`:{note} {values}")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    import sys

    print(render_markdown() if "--markdown" in sys.argv[1:] else render(), end="")
