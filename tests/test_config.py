"""Config layering and validation: every user mistake names the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from trm_core import config as C
from trm_core.config import ConfigError, resolve, tomllib

from helpers import REPO, run_worker


def test_shipped_config_toml_matches_built_in_defaults_and_presets() -> None:
    shipped = tomllib.loads((REPO / "config.toml").read_text())
    presets = shipped.pop("presets")
    assert shipped == C.Config().to_dict()
    assert presets == C.BUILTIN_PRESETS


def test_old_project_defaults() -> None:
    cfg = C.Config()
    assert (cfg.model.dim, cfg.model.depth, cfg.model.seq_len) == (1024, 4, 4096)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.learning_rate) == (1, 15, 2e-4)


def test_layers_apply_lowest_first(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[train]\nbatch_size = 2\nepochs = 3\nseed = 5\n"
                 "[presets.p.train]\nepochs = 4\nseed = 6\nmax_steps = 7\n")
    env = {"TRM_TRAIN_SEED": "8", "TRM_TRAIN_MAX_STEPS": "9"}
    cfg = resolve(config_file=f, preset="p", env=env, sets=["train.max_steps=10"])
    assert cfg.train.batch_size == 2   # file
    assert cfg.train.epochs == 4       # preset over file
    assert cfg.train.seed == 8         # environment over preset
    assert cfg.train.max_steps == 10   # --set over environment


def test_env_and_set_parse_types() -> None:
    cfg = resolve(env={"TRM_TRAIN_COMPILE": "true", "TRM_DATA_EXTENSIONS": ".py,.pyi"},
                  sets=["train.learning_rate=1e-3", "data.paths=['a', 'b']", "train.device=cpu"],
                  default_file=Path("/nonexistent"))
    assert cfg.train.compile == "on"  # true, its spelling before "auto"
    assert cfg.data.extensions == [".py", ".pyi"]
    assert cfg.train.learning_rate == 1e-3
    assert cfg.data.paths == ["a", "b"]
    assert cfg.train.device == "cpu"


@pytest.mark.parametrize("sets, env, expected", [
    (["train.batch_szie=2"], {}, "unknown key 'train.batch_szie' (did you mean 'batch_size'?)"),
    (["trian.batch_size=2"], {}, "unknown section 'trian' (did you mean 'train'?)"),
    (["train.batch_size=two"], {}, "train.batch_size = 'two' is not an integer"),
    (["train.batch_size=0"], {}, "train.batch_size = 0 is out of range; it must be >= 1"),
    (["train.learning_rate=-1"], {}, "train.learning_rate = -1.0 is out of range; it must be > 0.0"),
    (["data.kind='images'"], {}, "data.kind = 'images' is not allowed; choose one of 'code', 'pairs'"),
    (["train.compile=1"], {}, "train.compile = 1 is not a string"),
    (["train.compile=sometimes"], {}, "train.compile = 'sometimes' is not allowed; choose one of 'off', 'on', 'auto'"),
    (["train.batch_size=6", "train.micro_batch_size=4"], {}, "train.micro_batch_size = 4 does not divide train.batch_size = 6"),
    ([], {"TRM_MODEL_DIMM": "3"}, "environment TRM_MODEL_DIMM: unknown key 'model.dimm' (did you mean 'dim'?)"),
    (["train.device=tpu"], {}, "train.device = 'tpu' is not allowed"),
    (["train.seed=18446744073709551616"], {}, "train.seed = 18446744073709551616 is out of range"),
    (["model.dim=8", "model.expansion_factor=0.1"], {}, "model.expansion_factor = 0.1 gives a hidden width of 0"),
])
def test_bad_values_name_key_value_and_rule(sets: list[str], env: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve(env=env, sets=sets, default_file=Path("/nonexistent"))
    assert expected in str(err.value)


def test_bad_file_and_preset(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[train\nbatch_size = 1\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        resolve(config_file=f, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(config_file=tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="unknown preset 'tinny' \\(did you mean 'tiny'\\?\\)"):
        resolve(preset="tinny", env={}, default_file=Path("/nonexistent"))
    f.write_text("[presets]\ntiny = 1\n")
    with pytest.raises(ConfigError, match=r"\[presets\] must hold tables"):
        resolve(config_file=f, preset="tiny", env={})


def test_resume_allows_only_keys_that_keep_model_data_and_optimizer() -> None:
    C.check_resume_overrides(["train.max_steps=5", "train.micro_batch_size=2"], None)
    with pytest.raises(ConfigError, match="train.learning_rate cannot change on resume"):
        C.check_resume_overrides(["train.learning_rate=1"], None)


@pytest.mark.process
def test_worker_exits_2_on_bad_config_and_writes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_worker(run_dir, ["--set", "train.batch_size=-3"])
    assert result.returncode == 2
    assert "train.batch_size = -3 is out of range" in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()


@pytest.mark.process
def test_worker_exits_2_for_a_missing_cuda_device(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_worker(tmp_path / "run", ["--set", "train.device=cuda"])
    assert result.returncode == 2
    assert "train.device = 'cuda' but no CUDA device is available" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.process
def test_cli_exits_2_on_bad_config(tmp_path: Path) -> None:
    import subprocess
    import sys

    from helpers import worker_env
    result = subprocess.run([sys.executable, "-m", "trm_tui.cli", "--no-ui", "--run-dir", str(tmp_path / "r"),
                             "--set", "model.dimm=3"], capture_output=True, text=True, env=worker_env(), timeout=60)
    assert result.returncode == 2
    assert "unknown key 'model.dimm' (did you mean 'dim'?)" in result.stderr
    assert not (tmp_path / "r").exists()


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = resolve(sets=["train.seed=3", "data.paths=['x']"], env={}, default_file=Path("/nonexistent"))
    C.write_config(cfg, tmp_path / "config.toml")
    again = resolve(base=C.read_run_config(tmp_path / "config.toml"), env={})
    assert again == cfg and again.hash() == cfg.hash()


def test_shipped_config_comments_come_from_the_schema() -> None:
    """Every comment in config.toml is its field's doc: the file is the schema's rendering, whole."""
    from trm_core.config.reference import render
    assert (REPO / "config.toml").read_text() == render()


def test_config_reference_page_is_the_schema_and_its_names_work() -> None:
    """docs/config.md is the schema's rendering, whole; and what it says holds: one row per key, each named
    environment variable sets its key, and the keys marked changeable on resume are the ones a resume accepts."""
    import dataclasses

    from trm_core.config.reference import render_markdown
    from trm_core.config.run_config import SAFE_ON_RESUME
    from trm_core.config.schema import SECTIONS

    page = render_markdown()
    assert (REPO / "docs" / "config.md").read_text() == page
    section, rows = "", {}
    for line in page.splitlines():
        if line.startswith("## ["):
            section = line[4:-1]
        elif line.startswith("| `"):
            cells = [c.strip(" `") for c in line.strip("|").split("|")]
            rows[f"{section}.{cells[0]}"] = cells
    assert set(rows) == {f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    assert {key for key, cells in rows.items() if cells[3] == "yes"} == SAFE_ON_RESUME
    assert rows["train.batch_size"][4] == "TRM_TRAIN_BATCH_SIZE"
    assert resolve(env={"TRM_TRAIN_BATCH_SIZE": "3"}).train.batch_size == 3
