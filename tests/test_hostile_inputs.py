"""Hostile and careless input, thrown at the readers every command passes it through: whatever the value, the
reader answers with the input read or a ``ConfigError`` naming it (one line, exit 2 at the command's boundary),
never another exception (a traceback). Property-based (hypothesis), in process: the commands' own boundary is
tested end to end beside each feature."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trm_core.config import ConfigError

JSON = st.recursive(st.none() | st.booleans() | st.integers(-20, 20) | st.floats(allow_nan=True) | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=20)
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused_or(read: Any, *args: Any) -> Any:
    """``read(*args)``: its value, or None for a ConfigError; any other exception fails the test."""
    try:
        return read(*args)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return None


@QUICK
@given(JSON)
def test_an_arc_grid_is_colours_or_refused(value: Any) -> None:
    from trm_core.prep.arc import _grid

    grid = refused_or(_grid, value, "task t, train[0] input")
    if grid is not None:  # read: exactly the JSON's colours, no true taken for 1, no [2] for 2
        assert grid.tolist() == value and all(type(c) is int for row in value for c in row)


@pytest.mark.parametrize("value, said", [([[1, [2], 3]], "row 0, column 1 is [2]"),
                                         ([[True, 2]], "row 0, column 0 is true"),
                                         ([[1], [1, 2]], "rows differ in length"), ([[10]], "is 10")])
def test_an_arc_grid_refusal_names_the_cell(value: Any, said: str) -> None:
    from trm_core.prep.arc import _grid

    with pytest.raises(ConfigError, match="colours 0..9|differ") as refused:
        _grid(value, "t.json: task t, train[0] input")
    assert said in str(refused.value) and "t.json: task t, train[0] input" in str(refused.value)


@QUICK
@given(st.text(max_size=30))
def test_a_sweep_grid_reads_or_is_refused(text: str) -> None:
    from trm_core.evaluate.test_time.sweep import parse_sweep

    points = refused_or(parse_sweep, text)
    for point in points or []:  # every point it accepts is one the flags accept
        assert point.test_time.problem(False) is None


def _every_key() -> list[str]:
    import dataclasses

    from trm_core.config.schema import SECTIONS

    return [f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_every_key()), JSON)
def test_a_config_value_is_checked_or_refused(key: str, value: Any) -> None:
    """Every key of the schema, any JSON value (a config.json, a yaml, a TOML table give these): read or refused
    in one line naming it."""
    from trm_core.weights.reference import config_of

    cfg = refused_or(config_of, {key: value}, "config.json")
    if cfg is not None and key.startswith("eval."):
        from trm_core.evaluate.test_time.settings import TestTime

        assert TestTime.of_config(cfg).problem(True) is None  # a model folder asks only for what can run


@QUICK
@given(task=st.dictionaries(st.sampled_from(["train", "test", "x"]), JSON, max_size=3), pid=st.text(max_size=8))
def test_an_arc_task_file_reads_or_is_refused(task: dict, pid: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from trm_core.prep.arc_tasks import read_tasks

    path = tmp_path_factory.mktemp("tasks") / "tasks.json"
    path.write_text(json.dumps({pid: task}))
    tasks = refused_or(read_tasks, [path])
    if tasks is not None:
        assert all("|||" not in name and name for name in tasks)
        assert all(isinstance(g, np.ndarray) for t in tasks.values() for pairs in t.values() for p in pairs
                   for g in p if g is not None)


@pytest.mark.parametrize("spec", ["hf:../../x", "hf:-/-", "hf:a/b/../../../../etc/passwd", "hf:./x", "hf:a/b/c/../../d"])
def test_a_hub_spec_that_climbs_out_is_refused(spec: str) -> None:
    from trm_core.weights.sources import parse_hub

    with pytest.raises(ConfigError, match="--model"):
        parse_hub(spec, "--model")


@QUICK
@given(st.text(max_size=40))
def test_a_hub_spec_reads_or_is_refused(text: str) -> None:
    from trm_core.weights.sources import parse_hub

    spec = refused_or(parse_hub, "hf:" + text, "--model")
    if spec is not None:  # what is read never climbs out of the repository or looks like a flag
        owner, name = spec.repo.split("/")
        assert ".." not in spec.repo and not owner.startswith(("-", ".")) and not name.startswith(("-", "."))
        assert ".." not in spec.path.split("/")


def test_tensors_that_cannot_be_weights_are_named() -> None:
    import torch

    from trm_core.weights.tensor_checks import value_problems

    said = value_problems({"ok": torch.ones(2), "nan": torch.tensor([1.0, float("nan")]), "meta": torch.empty(3, device="meta"),
                           "sparse": torch.eye(2).to_sparse(), "ints": torch.arange(3), "obj": [1.0]})
    assert said == ["nan: 1 of 2 values are NaN or infinite", "meta: a meta tensor (a shape without values)",
                    "sparse: a sparse_coo tensor; weights are dense", "ints: int64 values; weights are floating point",
                    "obj: a list, not a tensor"]


ARCH = {"name": "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1", "hidden_size": 16, "L_layers": 1,
        "H_cycles": 2, "L_cycles": 2, "halt_max_steps": 3, "num_heads": 2, "expansion": 4, "pos_encodings": "rope",
        "puzzle_emb_ndim": 16, "puzzle_emb_len": 2, "mlp_t": False, "halt_exploration_prob": 0.1,
        "loss": {"loss_type": "stablemax_cross_entropy"}}


@QUICK
@given(st.sampled_from(sorted(ARCH)), JSON)
def test_a_reference_yaml_value_is_read_or_refused_naming_its_key(key: str, value: Any) -> None:
    """Any value at any key of the reference's arch section: read, or refused naming arch.KEY (or the key of ours
    it becomes), never a traceback."""
    from trm_core.weights.reference import reference_config

    cfg = refused_or(reference_config, {"arch": {**ARCH, key: value}}, "/nowhere", "all_config.yaml")
    if cfg is not None:
        assert cfg.model.dim >= 8 and cfg.model.max_supervision_steps >= 1
