"""The shipped ``config.toml``, rendered from the schema: every key, its default and its doc, then the
built-in presets. ``python -m trm_core.config.reference > config.toml`` rewrites it; a test keeps the file
equal to this rendering, so a comment can never drift from the field it describes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tomli_w

from trm_core.config.schema import BUILTIN_PRESETS, SECTIONS

HEADER = """\
# trm-tui defaults. Every key with its default and what it does.
# Layering, lowest first: built-in defaults < this file (--config FILE, default ./config.toml)
# < a preset (--preset NAME) < environment TRM_<SECTION>_<KEY> < --set section.key=value.
# The resolved config of each run is written to RUN_DIR/config.toml; --resume reads it from there.
"""

PRESETS_NOTE = """\
# Presets apply over the tables above. `tiny` is also built in, so --preset tiny works anywhere:
# sized for a CPU-only machine (>= 5 steps/s on 2 cores, loss visibly falling within a minute).
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
        for section, values in tables.items():
            body = "\n".join(f"{k} = {_value(v)}" for k, v in values.items())
            parts.append(f"[presets.{name}.{section}]\n{body}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
