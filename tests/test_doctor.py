"""``trm-tui doctor``: a good config passes; each failure it knows is found, named, with its fix and exit 1
(real files, datasets, disks and terminals; the GPU's facts are the one thing made up, as this machine has
none); a start refuses what doctor would fail, before it launches anything."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import cli_run
from trm_core.config import resolve
from trm_core.doctor.report import Status
from trm_core.doctor.platform import GpuFacts, PlatformFacts, verdicts


def by_name(stdout: str) -> dict[tuple[str, str], dict]:
    return {(c["area"], c["name"]): c for c in map(json.loads, stdout.splitlines())}


@pytest.fixture(scope="module")
def sudoku_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (small) Sudoku dataset: 30 generated puzzles with 3 augmentations each."""
    root = tmp_path_factory.mktemp("doctor")
    for count, seed, name in ((30, 0, "train.csv"), (8, 1, "test.csv")):
        made = cli_run("data", "sudoku-generate", "--count", str(count), "--seed", str(seed), "--blanks", "40",
                       "--out", str(root / name))
        assert made.returncode == 0, made.stderr
    built = cli_run("data", "sudoku", "--csv", str(root / "train.csv"), "--test-csv", str(root / "test.csv"),
                    "--aug", "3", "--out", str(root / "sudoku"))
    assert built.returncode == 0, built.stderr
    return root / "sudoku"


@pytest.mark.process
def test_a_good_config_passes_with_every_area_checked(tmp_path: Path, micro_args: list[str]) -> None:
    t0 = time.monotonic()
    done = cli_run("doctor", "--run-dir", str(tmp_path / "run"), *micro_args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    found = by_name(done.stdout)
    assert {area for area, _ in found} == {"config", "torch", "dataset", "model", "disk", "distributed", "terminal"}
    assert all(c["status"] in ("OK", "WARN") for c in found.values()), found
    assert "26,128 parameters" in found[("model", "builds")]["detail"]
    assert "a sample x micro-batch 2" in found[("model", "memory")]["detail"]
    assert found[("torch", "device")]["detail"] == "no GPU: the run trains on the CPU"
    assert not (tmp_path / "run").exists()  # nothing written
    assert time.monotonic() - t0 < 60
    text = cli_run("doctor", "--run-dir", str(tmp_path / "run"), *micro_args)
    assert text.returncode == 0 and "0 failed" in text.stdout and text.stdout.splitlines()[0].startswith("OK    config")


@pytest.mark.process
def test_a_dataset_that_contradicts_the_config_or_the_recipe(tmp_path: Path, sudoku_set: Path) -> None:
    run = ["--run-dir", str(tmp_path / "run"), "--no-memory", "--json"]
    found = by_name(cli_run("doctor", *run, "--set", "data.kind=puzzles", "--set",
                            f"data.dataset_dir={tmp_path / 'none'}").stdout)
    assert found[("dataset", "present")]["status"] == "FAIL" and "does not exist" in found[("dataset", "present")]["detail"]
    paper = by_name(cli_run("doctor", *run, "--preset", "sudoku-paper", "--set", f"data.dataset_dir={tmp_path / 'none'}").stdout)
    assert paper[("dataset", "present")]["fix"].startswith(  # the preset's own command, not "trm-tui data ..."
        f"build it with: trm-tui data sudoku --hub --subsample 1000 --aug 1000 --out {tmp_path / 'none'}")

    wrong = cli_run("doctor", *run, "--preset", "tiny", "--set", "data.kind=puzzles",
                    "--set", f"data.dataset_dir={sudoku_set}")
    assert wrong.returncode == 1
    shape = by_name(wrong.stdout)[("dataset", "shape")]
    assert shape["status"] == "FAIL" and "model.seq_len = 64 but" in shape["detail"] and "says seq_len = 81" in shape["detail"]

    cpu = by_name(cli_run("doctor", *run, "--preset", "sudoku-cpu", "--set", f"data.dataset_dir={sudoku_set}",
                          "--set", "train.batch_size=8").stdout)
    recipe = cpu[("dataset", "recipe")]
    assert recipe["status"] == "WARN" and "30 groups of 4.0 puzzles" in recipe["detail"]
    assert "--aug 1000" in recipe["fix"]
    assert cpu[("dataset", "steps")]["status"] == "OK"
    # 30 examples a pass at batch 32: a batch spans passes, as the reference's sampler packs it
    big = by_name(cli_run("doctor", *run, "--preset", "sudoku-cpu", "--set", f"data.dataset_dir={sudoku_set}").stdout)
    assert big[("dataset", "steps")]["status"] == "OK" and "0.94 batches a pass" in big[("dataset", "steps")]["detail"]
    short = by_name(cli_run("doctor", *run, "--preset", "sudoku-cpu", "--set", f"data.dataset_dir={sudoku_set}",
                            "--set", "train.max_steps=0", "--set", "train.epochs=1").stdout)
    assert short[("dataset", "steps")]["status"] == "FAIL" and "fewer than one batch" in short[("dataset", "steps")]["detail"]


@pytest.mark.process
def test_memory_disk_and_rendezvous_failures(tmp_path: Path, micro_args: list[str]) -> None:
    huge = cli_run("doctor", "--run-dir", str(tmp_path / "run"), *micro_args, "--set", "train.batch_size=16777216",
                   "--set", "train.micro_batch_size=16777216", "--json")
    assert huge.returncode == 1
    memory = by_name(huge.stdout)[("model", "memory")]
    assert memory["status"] == "FAIL" and "set train.micro_batch_size to at most" in memory["fix"]

    full = by_name(cli_run("doctor", "--run-dir", str(tmp_path / "run"), *micro_args, "--no-memory", "--json",
                           "--set", "train.keep_checkpoints=100000000").stdout)
    assert full[("disk", "space")]["status"] == "FAIL" and "100000001 checkpoints" in full[("disk", "space")]["detail"]

    (tmp_path / "file").write_text("not a folder")
    afile = by_name(cli_run("doctor", "--run-dir", str(tmp_path / "file"), *micro_args, "--no-memory", "--json").stdout)
    assert afile[("disk", "run dir")]["status"] == "FAIL" and "is a file" in afile[("disk", "run dir")]["detail"]

    nodes = by_name(cli_run("doctor", "--run-dir", str(tmp_path / "run"), *micro_args, "--no-memory", "--json",
                            "--set", "distributed.nnodes=2", "--set", "train.batch_size=4",
                            "--set", "distributed.rdzv_endpoint=no-such-host.invalid:29400").stdout)
    assert nodes[("distributed", "rendezvous")]["status"] == "FAIL"
    assert "does not resolve" in nodes[("distributed", "rendezvous")]["detail"]
    from trm_core.doctor.storage import LOCAL_FILESYSTEMS, filesystem_type

    if filesystem_type(tmp_path) in LOCAL_FILESYSTEMS:
        assert nodes[("disk", "shared")]["status"] == "FAIL" and "every node must see" in nodes[("disk", "shared")]["detail"]

    bad = cli_run("doctor", "--run-dir", str(tmp_path / "run"), "--set", "model.dim=wide")
    assert bad.returncode == 1 and "FAIL  config" in bad.stdout and "model.dim" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_the_gpu_failures_it_knows() -> None:
    """Judged from facts a GPU machine would report (this one has no GPU)."""
    cfg = resolve(preset="tiny", sets=["train.device=cuda", "model.net=mlp_t", "train.precision=bf16"])

    def status(facts: PlatformFacts, name: str) -> tuple[Status, str]:
        check = next(c for c in verdicts(facts, cfg) if c.name == name)
        return check.status, check.detail + " | " + check.fix

    cpu_build = PlatformFacts("2.13.0+cpu", None, False, nvml_gpus=2, driver="550.54")
    assert status(cpu_build, "device")[0] == Status.FAIL and "torch is a CPU build" in status(cpu_build, "device")[1]
    old_driver = PlatformFacts("2.13.0+cu130", "13.0", False, nvml_gpus=1, driver="470.82")
    s, text = status(old_driver, "device")
    assert s == Status.FAIL and "driver does not serve this build's CUDA 13.0" in text
    v100 = GpuFacts(0, "Tesla V100", (7, 0), 16384, 16000, bf16=False)
    old_gpu = PlatformFacts("2.13.0+cu130", "13.0", True, ["sm_80", "sm_90", "sm_100", "compute_100"], [v100])
    s, text = status(old_gpu, "gpu 0")
    assert s == Status.FAIL and "Tesla V100 is sm_70" in text and "sm_80, sm_90" in text
    assert status(old_gpu, "bf16")[0] == Status.FAIL
    h200 = GpuFacts(0, "NVIDIA H200", (9, 0), 143771, 140000, bf16=True)
    fine = PlatformFacts("2.13.0+cu130", "13.0", True, ["sm_80", "sm_90"], [h200], nvml_gpus=1, driver="570.1")
    assert all(c.status == Status.OK for c in verdicts(fine, cfg)), verdicts(fine, cfg)
    no_nvml = PlatformFacts("2.13.0+cu130", "13.0", True, ["sm_90"], [h200], nvml_reason="no NVIDIA GPU (libnvidia-ml.so not found)")
    assert status(no_nvml, "nvml")[0] == Status.WARN
    ptx = PlatformFacts("2.13.0+cu130", "13.0", True, ["sm_80", "compute_90"], [GpuFacts(0, "B200", (10, 0), 1, 1, True)])
    assert status(ptx, "gpu 0")[0] == Status.OK  # PTX for 9.0 runs (JIT) on a 10.0 GPU
    # this machine's real facts: no GPU, and a CPU config says so as OK
    from trm_core.doctor.platform import gather

    real = verdicts(gather(), resolve(preset="tiny"))
    assert [c.status for c in real if c.name == "device"] == [Status.OK]


def test_compile_needs_its_tool() -> None:
    """train.compile on or auto: a C++ compiler for Inductor on a CPU, Triton on a GPU; 'on' without it fails,
    'auto' warns (its trial falls back to eager)."""
    def check(facts: PlatformFacts, *sets: str) -> tuple[Status, str]:
        found = [c for c in verdicts(facts, resolve(preset="tiny", sets=list(sets))) if c.name == "compile"]
        return (found[0].status, found[0].detail + " | " + found[0].fix) if found else (None, "")

    cpu = PlatformFacts("2.13.0+cpu", None, False, compiler_problem="InvalidCxxCompiler: No working C++ compiler")
    assert check(cpu, "train.compile='off'") == (None, "")
    status, text = check(cpu, "train.compile='on'")
    assert status == Status.FAIL and "No working C++ compiler" in text and "apt install g++" in text
    assert check(cpu, "train.compile='auto'")[0] == Status.WARN
    assert check(PlatformFacts("2.13.0+cpu", None, False, compiler="g++"), "train.compile='on'") == \
        (Status.OK, "train.compile = 'on': Inductor has the C++ compiler g++ | ")
    h200 = GpuFacts(0, "NVIDIA H200", (9, 0), 143771, 140000, bf16=True)
    gpu = PlatformFacts("2.13.0+cu130", "13.0", True, ["sm_90"], [h200], nvml_gpus=1, compiler="g++", triton=False)
    status, text = check(gpu, "train.compile='on'", "train.device=cuda")
    assert status == Status.FAIL and "Triton is not installed" in text


@pytest.mark.process
def test_doctor_finds_no_compiler_as_inductor_would(tmp_path: Path, micro_args: list[str]) -> None:
    """The real lookup (Inductor's own, which honours CXX): with none, train.compile = 'on' fails the doctor."""
    done = cli_run("doctor", "--run-dir", str(tmp_path / "run"), *micro_args, "--set", "train.compile='on'",
                   "--no-memory", CXX="/bin/false")
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.split()[:3] == ["FAIL", "torch", "compile"]]
    assert "No working C++ compiler" in line


@pytest.mark.tmux
@pytest.mark.process
def test_in_a_small_terminal_it_warns_and_under_no_color_it_says_so(tmp_path: Path, micro_args: list[str]) -> None:
    if not shutil.which("tmux"):
        pytest.skip("no tmux")
    from helpers import worker_env

    import shlex

    session = f"doctor-{time.monotonic_ns()}"
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "trm_tui.cli", "doctor", "--run-dir",
                                                 str(tmp_path / "run"), "--no-memory", *micro_args])
    env = worker_env()
    subprocess.run(["tmux", "-L", session, "new-session", "-d", "-s", session, "-x", "70", "-y", "20", "-e",
                    f"PYTHONPATH={env['PYTHONPATH']}", "-e", "NO_COLOR=1", f"{command}; echo EXIT=$?; sleep 60"],
                   check=True, env=env)
    try:
        deadline, text = time.monotonic() + 60, ""
        while time.monotonic() < deadline and "EXIT=" not in text:
            time.sleep(0.3)
            text = subprocess.run(["tmux", "-L", session, "capture-pane", "-p", "-J", "-S", "-100", "-t", session],
                                  capture_output=True, text=True).stdout
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], capture_output=True)  # its own server: no other test's window sizes it
    assert "WARN  terminal    size        70x20: the dashboard needs at least 80x24" in text
    assert "NO_COLOR is set" in text
    assert "EXIT=0" in text  # a warning alone fails nothing


@pytest.mark.process
def test_a_start_refuses_what_doctor_fails_before_launching(tmp_path: Path, sudoku_set: Path) -> None:
    run_dir = tmp_path / "run"
    done = cli_run("--no-ui", "--run-dir", str(run_dir), "--preset", "tiny", "--set", "data.kind=puzzles",
                   "--set", f"data.dataset_dir={sudoku_set}")
    assert done.returncode == 2
    assert "not started: 1 check(s) failed" in done.stderr and "model.seq_len = 64 but" in done.stderr
    assert not run_dir.exists()  # nothing launched, nothing written


def test_a_long_sequence_is_probed_short_and_carried_along_the_line() -> None:
    """The default config (139M parameters, 4,096 tokens) took most of an hour to probe on a CPU. A probe over
    budget runs at two shorter lengths and carries the bytes along their line: here within 5% of the full
    probe for each network (mlp_t's token width, rounded to 256, is probed above where rounding flattens it)."""
    from trm_core.config import resolve
    from trm_core.doctor.model_memory import activation_bytes, data_shape, static_bytes

    for net, extra in (("mixer", []), ("mlp_t", ["model.pos_encoding='none'"]), ("attention", ["model.num_heads=4"])):
        cfg = resolve(env={}, sets=[f"model.net='{net}'", "model.dim=64", "model.depth=1", "model.seq_len=1024",
                                    "model.latent_steps=2", "train.device='cpu'", *extra])
        shape = data_shape(cfg)
        params = static_bytes(cfg, shape)[0]
        full, _, how = activation_bytes(cfg, shape, params, float("inf"))
        short, _, said = activation_bytes(cfg, shape, params, 1e8)
        assert how == "" and "estimated from probes at seq_len" in said
        assert short == pytest.approx(full, rel=0.05), net


@pytest.mark.process
def test_doctor_prints_each_check_as_it_finishes(tmp_path: Path) -> None:
    """In an empty folder (the default config) doctor printed nothing for over 2 minutes: now its lines come
    as each check ends, a note says what the memory probe does, and the whole report takes seconds."""
    import sys

    from helpers import worker_env

    import resource

    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "trm_tui.cli", "doctor", "--json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=worker_env(OMP_NUM_THREADS=1))  # the suite's other workers share the cores
    arrived = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        arrived[(json.loads(line)["area"], json.loads(line)["name"])] = time.monotonic() - t0
    proc.wait(timeout=120)
    ended = time.monotonic() - t0
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the work it did, in CPU seconds (wall time on a machine the suite's other workers share says little):
    # 15 s here (10 s of wall time alone); the old doctor's was over 2 minutes of wall time
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    assert cpu_s < 60, cpu_s
    assert arrived[("model", "builds")] < arrived[("model", "memory")]
    assert ended - arrived[("config", "resolves")] > 2  # the first line came long before the end
    assert "Ctrl-C skips it" in proc.stderr.read()
