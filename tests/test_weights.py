"""Weights from elsewhere: a checkpoint in the reference's own layout (its compiled ACTLossHead's state dict,
saved by pretrain.py as ``step_N`` beside ``all_config.yaml``) imports as a completed run whose model gives the
same logits at every supervision step; a model folder and a reference checkpoint come from a hub served on
loopback; every refusal is exit 2, naming the problem, with nothing written."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import yaml

from helpers import FakeHub, cli, cli_run, events, fake_hub, hub_env, run_worker, small_arc_set
from trm_core.weights.reference import reference_name

SUDOKU = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def sudoku_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trm_tui.cli.main import main

    root = tmp_path_factory.mktemp("weights")
    assert main(["data", "sudoku-generate", "--count", "24", "--blanks", "40", "--out", str(root / "p.csv"),
                 "--seed", "3"]) == 0
    assert main(["data", "sudoku", "--csv", str(root / "p.csv"), "--out", str(root / "ds"), "--aug", "2"]) == 0
    return root / "ds"


def reference_arch(net: str, dim: int, prefix: int) -> dict:
    """all_config.yaml's arch section as the reference writes it (config/arch/trm.yaml's keys, pretrain.py's
    yaml.dump of PretrainConfig), small."""
    return {"name": "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
            "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"},
            "halt_exploration_prob": 0.1, "halt_max_steps": 3, "H_cycles": 2, "L_cycles": 2, "H_layers": 0,
            "L_layers": 1, "hidden_size": dim, "num_heads": 2, "expansion": 4, "puzzle_emb_ndim": dim if prefix else 0,
            "pos_encodings": "rope", "forward_dtype": "bfloat16", "mlp_t": net == "mlp_t", "puzzle_emb_len": prefix,
            "no_ACT_continue": True}


def write_reference_checkpoint(folder: Path, net: str, dataset: Path, step: int = 700, prefix: int = 2,
                               seed: int = 0) -> tuple[Path, torch.nn.Module]:
    """A model of random weights saved in the reference's layout: its keys through our exporter's inverse map
    (trm_core.weights.reference.reference_name), under the compiled model's ``_orig_mod.`` prefix."""
    from trm_core.data.factory import build_dataset
    from trm_core.weights.reference import reference_config

    folder.mkdir(parents=True, exist_ok=True)
    arch = reference_arch(net, 16, prefix)
    data = {"arch": arch, "data_paths": [str(dataset)], "global_batch_size": 16, "epochs": 100, "lr": 1e-4,
            "lr_min_ratio": 1.0, "lr_warmup_steps": 20, "beta1": 0.9, "beta2": 0.95, "weight_decay": 1.0,
            "puzzle_emb_weight_decay": 1.0, "puzzle_emb_lr": 1e-4, "seed": 0, "ema": True, "ema_rate": 0.999,
            "checkpoint_path": str(folder), "load_checkpoint": None}
    (folder / "all_config.yaml").write_text(yaml.dump(data))
    cfg = reference_config(data, str(dataset), "test")
    ds = build_dataset(cfg)
    from trm_core.train.model import build_model

    torch.manual_seed(seed)
    model = build_model(cfg.model, ds.vocab_size, ds.num_puzzle_ids)
    with torch.no_grad():  # the Q head and puzzle rows start at zero: give every weight a value that matters
        for tensor in model.state_dict().values():
            tensor.copy_(torch.randn_like(tensor) * 0.3)
    torch.save({reference_name(k): v.clone() for k, v in model.state_dict().items()}, folder / f"step_{step}")
    return folder / f"step_{step}", model.eval()


def same_logits(imported_run: Path, original: torch.nn.Module) -> None:
    """The imported run's model and the original give equal logits, halting logits and carries at every step."""
    from trm_core.evaluate import loaded as loading
    from trm_core.rundir.layout import RunDir

    loaded = loading.load(RunDir.at(imported_run), device="cpu")
    batch = loaded.dataset.examples("train", 0, 6)
    rows, seq = batch.inputs.shape[0], loaded.cfg.model.seq_len
    theirs_state = original.state_dict()
    assert all(torch.equal(t, theirs_state[k]) for k, t in loaded.ev.model.state_dict().items())
    with torch.inference_mode():
        ours, theirs = loaded.ev.model.initial_state(rows, seq), original.initial_state(rows, seq)
        for _ in range(loaded.cfg.model.max_supervision_steps):
            a = loaded.ev.model(batch.inputs, *ours, puzzle_ids=batch.puzzle_ids)
            b = original(batch.inputs, *theirs, puzzle_ids=batch.puzzle_ids)
            assert torch.equal(a.logits, b.logits) and torch.equal(a.halt_logit, b.halt_logit)
            ours, theirs = (a.y, a.z), (b.y, b.z)


@pytest.mark.parametrize("net", ["attention", "mlp_t"])
def test_a_reference_checkpoint_imports_to_identical_logits_at_every_supervision_step(
        net: str, sudoku_set: Path, tmp_path: Path) -> None:
    ckpt, original = write_reference_checkpoint(tmp_path / "ref", net, sudoku_set)
    run = tmp_path / "imported"
    done = cli_run("import", "reference", str(ckpt), "--out", str(run))
    assert done.returncode == 0, done.stderr
    assert "a completed run at step 700" in done.stderr and f"trm-tui eval --run-dir {run}" in done.stdout
    same_logits(run, original)
    start, end = events(run, "run_start")[0], events(run, "run_end")[0]
    assert start["weights_from"] == f"the reference's checkpoint {ckpt.resolve()}"
    assert end["status"] == "completed" and end["step"] == 700
    cfg = start["config"]
    assert cfg["model"]["net"] == net and cfg["model"]["puzzle_emb_len"] == 2 and cfg["train"]["loss"] == "stablemax"
    assert cfg["train"]["learning_rate"] == 1e-4 and cfg["train"]["batch_size"] == 16
    status = cli_run("status", "--run-dir", str(run))
    assert "completed (imported: the reference's checkpoint" in status.stdout, status.stdout
    if net == "mlp_t":  # every command that opens a run opens it: eval, solve, a resume refused in words
        evaluated = cli_run("eval", "--run-dir", str(run), "--json", "--no-predictions")
        assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["samples"] == 2, evaluated.stderr
        solved = cli_run("solve", SUDOKU, "--run-dir", str(run), "--json")
        assert solved.returncode == 0 and json.loads(solved.stdout)["checkpoint_step"] == 700, solved.stderr


def test_reference_checkpoints_that_do_not_fit_are_refused_by_name_and_nothing_is_written(
        sudoku_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trm_tui.cli.main import main

    ckpt, _ = write_reference_checkpoint(tmp_path / "ref", "mlp_t", sudoku_set)
    state = torch.load(ckpt, weights_only=True)
    out = tmp_path / "out"

    def refused(path: Path, *more: str) -> str:
        capsys.readouterr()
        assert main(["import", "reference", str(path), "--out", str(out), *more]) == 2
        assert not out.exists() and not list(tmp_path.glob(".out.building-*"))
        return capsys.readouterr().err

    extra = tmp_path / "ref" / "step_1"
    torch.save(state | {"_orig_mod.model.inner.L_level.layers.7.mlp.down_proj.weight": torch.zeros(2)}, extra)
    assert "layers.7.mlp.down_proj.weight" in refused(extra) and "our model for this config has no such weight" in \
        refused(extra)
    missing = tmp_path / "ref" / "step_2"
    torch.save({k: v for k, v in state.items() if "lm_head" not in k}, missing)
    assert "lm_head.weight: not in the checkpoint" in refused(missing)
    unknown = tmp_path / "ref" / "step_3"
    torch.save(state | {"something.else": torch.zeros(1)}, unknown)
    assert "something.else: not a weight of the reference's TRM" in refused(unknown)
    reshaped = tmp_path / "ref" / "step_4"
    torch.save(state | {reference_name("lm_head.weight"): torch.zeros(11, 8)}, reshaped)
    assert "shape (11, 8), the config's model wants (11, 16)" in refused(reshaped)
    code = tmp_path / "ref" / "step_5"
    torch.save({"x": Path("/")}, code)  # a pickle of an object: weights_only refuses to run its code
    assert "not a checkpoint torch.load reads with weights_only=True" in refused(code)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("arch:\n  hidden_size: 16\n   H_cycles: [\n")
    assert f"{bad_yaml}: line 3" in refused(ckpt, "--config", str(bad_yaml))
    hrm = tmp_path / "hrm.yaml"
    hrm.write_text(yaml.dump({"arch": reference_arch("mlp_t", 16, 2) | {"name": "hrm.hrm_act_v1@HRM"}}))
    assert "only the reference's TRM" in refused(ckpt, "--config", str(hrm))
    no_data = tmp_path / "nodata.yaml"
    no_data.write_text(yaml.dump({"arch": reference_arch("mlp_t", 16, 2), "data_paths": ["data/sudoku-x"]}))
    assert "data_paths[0] = 'data/sudoku-x' is not a folder here; give --dataset" in refused(ckpt, "--config",
                                                                                                  str(no_data))
    assert "no such file" in refused(tmp_path / "nothing")
    assert "weights_only=False" not in refused(code)  # torch's advice to load it unsafely is not repeated
    # values that cannot be weights, named by tensor (a model trained to NaN answers nothing)
    nan = tmp_path / "ref" / "step_6"
    torch.save(state | {reference_name("lm_head.weight"): torch.full((11, 16), float("nan"))}, nan)
    assert f"{reference_name('lm_head.weight')}: 176 of 176 values are NaN or infinite" in refused(nan)
    sparse = tmp_path / "ref" / "step_7"
    torch.save(state | {reference_name("lm_head.weight"): state[reference_name("lm_head.weight")].to_sparse()}, sparse)
    assert "a sparse_coo tensor; weights are dense" in refused(sparse)
    # a yaml's values of the wrong type, each named by its key (the data_paths as the real yaml's)
    data = yaml.safe_load((tmp_path / "ref" / "all_config.yaml").read_text())
    for key, value, said in (("hidden_size", "sixteen", "expected a whole number"), ("hidden_size", [16], "whole"),
                             ("hidden_size", None, "whole number"), ("hidden_size", 16.7, "whole number"),
                             ("hidden_size", -16, "must be at least 1"), ("H_cycles", "three", "whole number"),
                             ("halt_exploration_prob", "high", "a number from 0 to 1"),
                             ("loss", ["x"], "expected a section"), ("loss", {"loss_type": [1]}, "expected one of")):
        lying = tmp_path / f"{key}.yaml"
        lying.write_text(yaml.dump({**data, "arch": {**data["arch"], key: value}}))
        assert f"arch.{key}" in (err := refused(ckpt, "--config", str(lying))) and said in err, err
    # a yaml that lies about the model's size is refused on shapes alone, before a byte of it is allocated
    huge = tmp_path / "huge.yaml"
    huge.write_text(yaml.dump({**data, "arch": {**data["arch"], "hidden_size": 1_000_000, "puzzle_emb_ndim": 1_000_000}}))
    assert "shape (11, 16), the config's model wants (11, 1000000)" in refused(ckpt, "--config", str(huge))
    capsys.readouterr()  # --out that is a file, or inside one: said as such, not "not empty" or a traceback
    (tmp_path / "a-file").write_text("")
    assert main(["import", "reference", str(ckpt), "--out", str(tmp_path / "a-file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["import", "reference", str(ckpt), "--out", str(tmp_path / "a-file" / "x")]) == 2
    assert f"cannot be written ({tmp_path / 'a-file'} is a file)" in capsys.readouterr().err
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main(["import", "reference", str(ckpt), "--out", str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"


def test_models_and_reference_checkpoints_from_a_hub_then_from_its_cache_offline(
        sudoku_set: Path, tmp_path: Path) -> None:
    """A run's exported folder and a reference checkpoint in hub repositories (served on loopback): solve and
    eval --model take the repository, import takes hf:REPO/PATH; offline, the hub's cache answers; a repository
    that is not there, or not a TRM model, is exit 2 in words; export model --push uploads a folder that solve
    then takes from the hub, with the user's token, and refuses without one before writing anything."""
    ckpt, original = write_reference_checkpoint(tmp_path / "ref", "mlp_t", sudoku_set, step=40)
    run = tmp_path / "run"
    assert cli_run("import", "reference", str(ckpt), "--out", str(run)).returncode == 0
    folder = tmp_path / "exported"
    exported = cli_run("export", "model", "--run-dir", str(run), "--out", str(folder))
    assert exported.returncode == 0, exported.stderr
    repo = {p.name: p.read_bytes() for p in folder.iterdir()}
    repo |= {"ref/step_40": ckpt.read_bytes(), "ref/all_config.yaml": (ckpt.parent / "all_config.yaml").read_bytes()}
    cache = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    with fake_hub({"lab/trm-sudoku": repo, "lab/not-trm": {"config.json": b'{"model_type": "bert"}',
                                                             "model.safetensors": b"x"}}) as url:
        env = hub_env(tmp_path, HF_ENDPOINT=url) | cache
        by_dir = cli_run("solve", SUDOKU, "--model", str(folder), "--json", **cache)
        by_hub = cli_run("solve", SUDOKU, "--model", "hf:lab/trm-sudoku", "--json", **env)
        assert by_dir.returncode == 0 and by_hub.returncode == 0, by_hub.stderr
        assert json.loads(by_hub.stdout)["answers"] == json.loads(by_dir.stdout)["answers"]
        imported = cli_run("import", "reference", "hf:lab/trm-sudoku@main/ref/step_40", "--dataset", str(sudoku_set),
                           "--out", str(tmp_path / "from-hub"), **env)
        assert imported.returncode == 0, imported.stderr
        same_logits(tmp_path / "from-hub", original)
        missing = cli_run("solve", SUDOKU, "--model", "hf:lab/no-such-model", **env)
        assert missing.returncode == 2 and "no such model" in missing.stderr and "Traceback" not in missing.stderr
        other = cli_run("solve", SUDOKU, "--model", "hf:lab/not-trm", **env)
        assert other.returncode == 2 and "not a TRM model's config" in other.stderr, other.stderr
        pushed = cli_run("export", "model", "--run-dir", str(run), "--out", str(tmp_path / "pushed"), "--push",
                         "me/sudoku-trm", **env, HF_TOKEN="hf_test_token")
        assert pushed.returncode == 0 and "solve PUZZLE --model hf:me/sudoku-trm" in pushed.stdout, pushed.stderr
        assert FakeHub.files["me/sudoku-trm"] == {p.name: p.read_bytes() for p in (tmp_path / "pushed").iterdir()}
        assert FakeHub.tokens and all(t == "Bearer hf_test_token" for t in FakeHub.tokens)
        from_push = cli_run("solve", SUDOKU, "--model", "hf:me/sudoku-trm", "--json", **env)
        assert from_push.returncode == 0 and json.loads(from_push.stdout)["answers"] == \
            json.loads(by_dir.stdout)["answers"]
        no_token = cli_run("export", "model", "--run-dir", str(run), "--out", str(tmp_path / "p2"), "--push",
                           "me/other", **env)
        assert no_token.returncode == 2 and "no Hugging Face token" in no_token.stderr
        assert not (tmp_path / "p2").exists() and "me/other" not in FakeHub.files
    offline = cli_run("solve", SUDOKU, "--model", "hf:lab/trm-sudoku", "--json",
                      **hub_env(tmp_path, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:1") | cache)
    assert offline.returncode == 0 and json.loads(offline.stdout)["answers"] == json.loads(by_dir.stdout)["answers"]
    no_data = cli_run("eval", "--model", str(folder), **cache)
    assert no_data.returncode == 2 and "--model: give --dataset DIR too" in no_data.stderr
    both = cli_run("eval", "--model", str(folder), "--dataset", str(sudoku_set), "--run-dir", str(run), **cache)
    assert both.returncode == 2 and "--model and --run-dir: give one" in both.stderr


def test_a_new_arc_run_starts_from_a_trained_models_weights_with_the_puzzle_table_as_its_mean_row(
        tmp_path: Path) -> None:
    """train.init_from: every weight from the source run, the puzzle-embedding table (another set's puzzles)
    replaced by its mean row as the reference's load_checkpoint does (pretrain.py lines 251-261 at e7b6871,
    "Resize and reset puzzle emb if needed": torch.mean(puzzle_emb, dim=0, keepdim=True).expand(expected_shape));
    the run says where its weights came from; a source of other shapes is refused before anything starts."""
    from trm_core.evaluate import loaded as loading
    from trm_core.rundir.layout import RunDir

    puzzles, solutions, arc_set = small_arc_set(tmp_path, aug=3)
    ckpt, _ = write_reference_checkpoint(tmp_path / "ref", "attention", arc_set, step=90)
    source = tmp_path / "trained"
    assert cli_run("import", "reference", str(ckpt), "--out", str(source)).returncode == 0
    task = {**puzzles["p0000001"], "test": [{"input": t["input"], "output": o}
                                            for t, o in zip(puzzles["p0000001"]["test"], solutions["p0000001"])]}
    (tmp_path / "unseen.json").write_text(json.dumps(task))
    tasks = tmp_path / "tasks"
    built = cli_run("data", "arc", "--tasks", str(tmp_path / "unseen.json"), "--aug", "1", "--out", str(tasks))
    assert built.returncode == 0 and "eval scores pass@k" in built.stdout, built.stderr
    run = tmp_path / "fine-tuned"
    sets = {"data.dataset_dir": repr(str(tasks)), "train.init_from": repr(str(source)), "train.max_steps": 1,
            "train.learning_rate": 1e-9, "train.puzzle_emb_lr": 1e-9, "train.warmup_steps": 0, "train.batch_size": 2,
            "train.eval_every": 0, "train.threads": 1, "train.compile": "false", "train.precision": "'fp32'"}
    done = run_worker(run, ["--config", str(source / "config.toml"),
                            *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]], timeout=180)
    assert done.returncode == 0, done.stderr
    start = events(run, "run_start")[0]
    assert start["weights_from"] == f"{source.resolve()} step 90 (raw weights)"
    warned = [e["message"] for e in events(run, "warning")]
    assert any("puzzle embedding (22 puzzles) is replaced by its mean row for this set's 3" in m for m in warned), warned
    before = loading.load(RunDir.at(source), device="cpu").ev.model.state_dict()
    after = loading.load(RunDir.at(run), weights="raw", device="cpu").ev.model.state_dict()
    for name, tensor in after.items():  # one step at a learning rate of 1e-9 moves nothing visible
        wanted = before[name].mean(0, keepdim=True).expand_as(tensor) if name == "puzzle_emb.weights" else before[name]
        assert torch.allclose(tensor, wanted, atol=1e-6), name

    other = cli_run("--no-ui", "--run-dir", str(tmp_path / "other"), "--config", str(source / "config.toml"),
                    "--set", "model.dim=32", "--init-from", str(source))
    assert other.returncode == 2 and "its model has other shapes (model.dim = 16 there, 32 here)" in other.stderr
    nothing = cli_run("--no-ui", "--run-dir", str(tmp_path / "other"), "--config", str(source / "config.toml"),
                      "--init-from", str(tmp_path / "missing"))
    assert nothing.returncode == 2 and "no such folder" in nothing.stderr
    assert not (tmp_path / "other").exists()


def test_an_arc_set_of_named_task_files_with_or_without_their_test_outputs(tmp_path: Path) -> None:
    """data arc --tasks: demonstrations train; the test split is the test pairs when every output is given (and
    eval votes on them), else the demonstrations; a demonstration without an output is refused by file, task
    and index, as --tasks beside --json-dir is."""
    task = {"train": [{"input": [[1, 0]], "output": [[0, 1]]}, {"input": [[2, 0]], "output": [[0, 2]]}],
            "test": [{"input": [[3, 0]], "output": [[0, 3]]}]}
    (tmp_path / "a.json").write_text(json.dumps(task))
    (tmp_path / "b.json").write_text(json.dumps({**task, "test": [{"input": [[4, 0]]}]}))
    scored = cli_run("data", "arc", "--tasks", str(tmp_path / "a.json"), "--out", str(tmp_path / "scored"))
    assert scored.returncode == 0, scored.stderr
    assert json.loads((tmp_path / "scored" / "test_puzzles.json").read_text())["a"]["test"][0]["output"] == [[0, 3]]
    assert json.loads((tmp_path / "scored" / "test" / "dataset.json").read_text())["total_puzzles"] == 1
    mixed = cli_run("data", "arc", "--tasks", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--aug", "2",
                    "--out", str(tmp_path / "mixed"))
    assert mixed.returncode == 0 and "the test split is the demonstrations themselves" in mixed.stdout
    assert not (tmp_path / "mixed" / "test_puzzles.json").exists()
    names = json.loads((tmp_path / "mixed" / "identifiers.json").read_text())
    assert "a" in names and "b" in names and len(names) == 1 + 2 * 3
    (tmp_path / "bad.json").write_text(json.dumps({**task, "train": [{"input": [[1]]}]}))
    bad = cli_run("data", "arc", "--tasks", str(tmp_path / "bad.json"), "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and f"{tmp_path / 'bad.json'}: task bad, train[0]: a demonstration pair needs" in \
        bad.stderr and not (tmp_path / "bad").exists()
    both = cli_run("data", "arc", "--tasks", str(tmp_path / "a.json"), "--json-dir", str(tmp_path), "--out",
                   str(tmp_path / "both"))
    assert both.returncode == 2 and "--tasks with --json-dir" in both.stderr
    # a task id holding the disguise separator (from a file's name or an object's key) would crash every eval
    (tmp_path / "x|||t1.json").write_text(json.dumps(task))
    (tmp_path / "keyed.json").write_text(json.dumps({"ok": task, "y|||t2|||01": task}))
    for name, pid in (("x|||t1.json", "x|||t1"), ("keyed.json", "y|||t2|||01")):
        sep = cli_run("data", "arc", "--tasks", str(tmp_path / name), "--out", str(tmp_path / "sep"))
        assert sep.returncode == 2 and f"task id {pid!r} holds '|||'" in sep.stderr, sep.stderr
        assert not (tmp_path / "sep").exists()


@pytest.mark.process
def test_init_from_a_run_says_what_it_skipped_and_refuses_what_cannot_be_before_starting(
        tmp_path: Path, micro_args: list[str]) -> None:
    """--init-from RUN with a corrupt newest checkpoint starts from the older one and says which it skipped and
    why; RUN:999 is refused before anything starts (nothing made); a choice the worker alone can make and
    cannot (RUN:best of a run without evals) ends the run as a config error, which the keeper does not restart."""
    source = tmp_path / "source"
    first = run_worker(source, [*micro_args, "--set", "train.max_steps=8"])
    assert first.returncode == 0, first.stderr
    newest = source / "checkpoints" / "step-00000008.pt"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated: it no longer verifies
    tuned = tmp_path / "tuned"
    done = run_worker(tuned, [*micro_args, "--set", "train.max_steps=10", "--set", f"train.init_from='{source}'",
                              "--set", 'train.depth_schedule=["0 T=1 n=1", "0.5 T=2 n=1"]'])
    assert done.returncode == 0, done.stderr
    start = events(tuned, "run_start")[0]
    assert start["weights_from"].endswith("step 4 (ema weights)")
    warned = " ".join(e["message"] for e in events(tuned, "warning"))
    assert "skipped step-00000008.pt (step 8)" in warned and "using step-00000004.pt (step 4)" in warned, warned
    # a fine-tune's recipe, said at the start: no shallow stages, a warm-up of a tenth of the run
    assert "a fine-tune keeps the source's weights" in warned and "restarts the optimizer's moments" in warned
    assert "is not run (the source ends at the model's full depth, T=2 n=1" in warned and "cut to 1" in warned
    assert start["config"]["train"]["depth_schedule"] == [] and start["config"]["train"]["warmup_steps"] == 1
    assert not events(tuned, "depth_stage")
    missing = cli_run("--no-ui", "--run-dir", str(tmp_path / "never"), *micro_args, "--init-from", f"{source}:999")
    assert missing.returncode == 2 and "no checkpoint of step 999 (checkpoints at steps: 4, 8)" in missing.stderr
    assert not (tmp_path / "never").exists()
    no_evals = tmp_path / "no-evals"
    assert run_worker(no_evals, [*micro_args, "--set", "train.max_steps=4", "--set", "train.eval_every=0"]).returncode == 0
    failed = cli_run("--no-ui", "--run-dir", str(tmp_path / "best"), *micro_args, "--init-from", f"{no_evals}:best")
    assert failed.returncode == 2 and "train.init_from = " in failed.stderr and "best: no checkpoint was saved at an " \
        "evaluated step" in failed.stderr, failed.stdout + failed.stderr
    assert "restart" not in failed.stdout and not (tmp_path / "best").exists()  # not restarted; nothing left


@pytest.mark.process
def test_a_hub_that_never_answers_is_named_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    """A hub that takes the connection and says nothing: the import says which endpoint it asks and how to skip
    it; Ctrl-C then ends it with one line (exit 130, no traceback) and no --out, whole or half."""
    import signal
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections queue up and are never answered
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    proc = cli("import", "reference", "hf:someone/trm/step_10", "--out", str(tmp_path / "out"),
               **hub_env(tmp_path, HF_ENDPOINT=endpoint))
    try:
        said = ""
        assert proc.stderr is not None
        while "asking" not in said:
            line = proc.stderr.readline()
            assert line, said
            said += line
        assert f"asking {endpoint} for step_10 of someone/trm (HF_HUB_OFFLINE=1 answers from the hub cache" in said
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    finally:
        proc.kill()
        silent.close()
