"""JSON as strict parsers read it: no bare NaN or Infinity (Python's json writes them by default, and jq,
JavaScript's JSON.parse and Go's encoding/json refuse the whole file). A non-finite figure (a model trained to
NaN) is written as the string "nan" / "inf" / "-inf", which says what it was."""

from __future__ import annotations

import json
import math
from typing import Any


def clean(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its name as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(clean(value), allow_nan=False, **kwargs)
