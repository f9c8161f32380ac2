"""The GPU measurements of ``bench/gpu_check.sh``, one stage per sub-command, each adding to one JSON file.

- ``speed``: our trainer against tiny-recursive-model 0.0.12's Trainer on the same GPU, the same model
  (parameter counts asserted equal), the same batch and the same supervision steps with halting disabled in
  both; ours eager and with ``train.compile``. Steps are interleaved (ours, ours compiled, reference, ...)
  so clock and thermal drift hit all three; the GPU is synchronised around each step.
- ``utilisation``: the real worker (``python -m trm_core.worker``) at a shape, while NVML is read every
  0.1 s: GPU busy %, memory, the worker's own memory, its samples/s.
- ``report``: every figure in the JSON, with the GPU named, as the GPU section of docs/benchmarks.md
  (replaced on each run) and a short summary on stdout.

Run from the repository root (bench/gpu_check.sh runs them all):
    python -m bench.gpu_bench speed --results R.json --shape seed
    python -m bench.gpu_bench utilisation --results R.json --seconds 20
    python -m bench.gpu_bench report --results R.json --docs docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, repo_env, set_flags

# The old project's defaults (dim 1024, depth 4, seq_len 4096, batch 1) are also our model defaults; the
# tiny preset is what a CPU trains. ``sup``: supervision steps per batch in the speed comparison (16 in
# training; fewer here so the fp32 reference finishes its steps inside the check's time).
SHAPES: dict[str, dict[str, int]] = {
    "seed": {"dim": 1024, "depth": 4, "seq_len": 4096, "batch": 1, "sup": 2, "steps": 6, "warmup": 2},
    "tiny": {"dim": 64, "depth": 2, "seq_len": 64, "batch": 16, "sup": 2, "steps": 30, "warmup": 3},
}
SECTION_START = "<!-- gpu-check: start (written by bench/gpu_check.sh; do not edit by hand) -->"
SECTION_END = "<!-- gpu-check: end -->"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save(path: Path, key: str, value: Any) -> None:
    data = load(path)
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


# -- speed ------------------------------------------------------------------------------------------------


def speed(args: argparse.Namespace) -> None:
    import torch

    from bench.reference_speed import RandomPairs
    from trm_core.config import Config, ModelConfig, TrainConfig
    from trm_core.data.base import Batch
    from trm_core.train.model import count_parameters
    from trm_core.train.trainer import Trainer

    shape = SHAPES[args.shape] | {k: v for k, v in (("steps", args.steps), ("sup", args.sup)) if v}
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def ours(compile_: bool) -> Trainer:
        cfg = Config(model=ModelConfig(dim=shape["dim"], depth=shape["depth"], seq_len=shape["seq_len"],
                                       max_supervision_steps=shape["sup"], halt_threshold=1.0),
                     train=TrainConfig(batch_size=shape["batch"], device=device, grad_clip=1.0, ema_decay=0.999,
                                       compile="on" if compile_ else "off", precision="autocast"))
        return Trainer(cfg, 258, total_steps=10_000)

    gen = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, 258, (shape["batch"], shape["seq_len"]), generator=gen)
    targets = torch.randint(0, 258, (shape["batch"], shape["seq_len"]), generator=gen)
    batch = Batch(inputs, targets)
    wanted = args.sides.split(",")
    sides: dict[str, Any] = {"ours": ours(False)}
    if "ours_compiled" in wanted:
        sides["ours_compiled"] = ours(True)
    m = sides["ours"].cfg.model
    if "reference" in wanted:
        from tiny_recursive_model import MLPMixer1D, TinyRecursiveModel, Trainer as RefTrainer

        ref_model = TinyRecursiveModel(dim=m.dim, num_tokens=258, network=MLPMixer1D(dim=m.dim, depth=m.depth,
                                       seq_len=m.seq_len), num_refinement_blocks=m.refinement_blocks,
                                       num_latent_refinements=m.latent_steps)
        assert count_parameters(ref_model) == sides["ours"].num_parameters
        with contextlib.redirect_stdout(io.StringIO()):
            sides["reference"] = RefTrainer(ref_model, RandomPairs(inputs, targets), batch_size=shape["batch"],
                                            epochs=1, cpu=device == "cpu", halt_prob_thres=1.01,
                                            max_recurrent_steps=m.max_supervision_steps, warmup_steps=10)
    print(f"built {', '.join(sides)}: {sides['ours'].num_parameters:,} parameters each", flush=True)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def one(name: str) -> float:
        sync()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the reference prints every supervision step
            sides[name]() if name == "reference" else sides[name].train_step(batch)
        sync()
        return time.perf_counter() - t0

    first = {}
    for name in sides:  # the compiled side compiles here
        first[name] = one(name)
        print(f"first step of {name}: {first[name]:.2f} s", flush=True)
    for _ in range(shape["warmup"] - 1):
        for name in sides:
            one(name)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(shape["steps"]):
        for name in sides:
            times[name].append(one(name))
    med = {name: statistics.median(t) for name, t in times.items()}
    base = "reference" if "reference" in med else "ours"
    result = {"shape": shape, "params": sides["ours"].num_parameters, "device": _device_name(),
              "first_step_s": first, "median_step_s": med,
              "samples_per_s": {name: shape["batch"] / s for name, s in med.items()},
              "baseline": base,
              "ratio_vs_reference": {name: med[base] / s for name, s in med.items() if name != base},
              "peak_mem_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None}
    save(args.results, f"speed_{args.shape}" + ("" if args.sides == "ours,reference" else f"_{args.sides.replace(',', '_')}"),
         result)
    print(f"speed {args.shape}: " + ", ".join(f"{n} {1000 * s:.1f} ms/step ({shape['batch'] / s:.2f} samples/s)"
                                              for n, s in med.items())
          + f"; against {base}: " + ", ".join(f"{n} {r:.2f}x" for n, r in result["ratio_vs_reference"].items()),
          flush=True)


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


# -- utilisation ------------------------------------------------------------------------------------------


def utilisation(args: argparse.Namespace) -> None:
    from trm_core.rundir.events import read_events
    from trm_core.rundir.layout import EVENTS
    from trm_core.telemetry import GpuProbe

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        sets = ["train.max_steps=100000", "train.eval_every=0", "train.checkpoint_every=100000",
                f"data.max_bytes={args.max_bytes}", f"data.cache_dir='{Path(tmp) / 'cache'}'", *args.sets]
        cmd = [sys.executable, "-m", "trm_core.worker", "--run-dir", str(run_dir)]
        cmd += set_flags(sets)
        env = repo_env()
        worker = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        probe = GpuProbe()
        try:
            steps = lambda: [e for e in read_events(run_dir / EVENTS).events if e["event"] == "step"] \
                if (run_dir / EVENTS).exists() else []  # noqa: E731
            deadline = time.monotonic() + args.start_timeout
            while len(steps()) < args.skip_steps and time.monotonic() < deadline:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited {worker.returncode}: {worker.stderr.read()[-2000:]}")
                time.sleep(0.2)
            if len(steps()) < args.skip_steps:
                raise RuntimeError(f"fewer than {args.skip_steps} steps after {args.start_timeout}s")
            first_counted = len(steps())
            samples = []
            t_end = time.monotonic() + args.seconds
            while time.monotonic() < t_end:
                st = probe.sample({worker.pid})
                if st.available:
                    samples.append(st.gpus[0])
                time.sleep(0.1)
            counted = [e for e in steps() if e["step"] > first_counted]
        finally:
            probe.close()
            os.killpg(worker.pid, signal.SIGKILL)  # no final checkpoint: the figure is the training, not the save
            worker.wait()
        utils = [s.util_pct for s in samples if s.util_pct is not None]
        result = {"sets": sets, "device": _device_name(), "seconds": args.seconds, "nvml_samples": len(samples),
                  "steps": len(counted),
                  "util_mean_pct": statistics.mean(utils) if utils else None,
                  "util_min_pct": min(utils) if utils else None,
                  "util_share_ge_90": sum(u >= 90 for u in utils) / len(utils) if utils else None,
                  "mem_used_mib": max((s.mem_used_mb or 0) for s in samples) if samples else None,
                  "worker_mem_mib": max((s.worker_mem_mb or 0) for s in samples) if samples else None,
                  "power_w_mean": statistics.mean(s.power_w for s in samples if s.power_w) if any(
                      s.power_w for s in samples) else None,
                  "samples_per_s_median": statistics.median(e["samples_per_s"] for e in counted) if counted else None,
                  "step_s_median": statistics.median(e["step_s"] for e in counted) if counted else None}
        save(args.results, f"utilisation_{args.name}", result)
        print(f"utilisation {args.name}: GPU busy {result['util_mean_pct']}% mean over {len(utils)} NVML reads "
              f"({result['steps']} steps, {result['samples_per_s_median']} samples/s), worker memory "
              f"{result['worker_mem_mib']} MiB", flush=True)


# -- report -----------------------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".2f", unit: str = "") -> str:
    return "not measured" if value is None else format(value, spec) + unit


def report(args: argparse.Namespace) -> None:
    data = load(args.results)
    env = data.get("environment", {})
    gpu = env.get("gpu", "no GPU")
    lines = [SECTION_START, "", "## The GPU path (`bench/gpu_check.sh`)", ""]
    if not any(value for key, value in data.items() if key != "environment" and not key.endswith("_error")):
        lines += ["**Not measured yet**: `bench/gpu_check.sh` has not run on a GPU. " + (data.get("note") or ""), ""]
    else:
        lines += [f"Measured {env.get('date', '?')} on **{gpu}** (driver {env.get('driver', '?')}, CUDA "
                  f"{env.get('cuda', '?')}), torch {env.get('torch', '?')}, Python {env.get('python', '?')}, "
                  f"{env.get('cpus', '?')} CPU cores, by `bench/gpu_check.sh` in {env.get('wall_s', '?')} s "
                  "end to end. " + ("Figures of stages this run skipped come from the earlier run it kept "
                                    "(KEEP_RESULTS)." if env.get("kept_earlier") else
                                    "Every figure below comes from that one run."), ""]
        lines += ["### Speed against tiny-recursive-model 0.0.12", "",
                  "Same model (parameter counts asserted equal), same batch, halting disabled in both, AdamW and "
                  "EMA in both. Ours runs bf16 autocast (`train.precision = 'autocast'`, the default), the reference as "
                  "shipped (fp32 under accelerate). Steps interleaved ours / reference, GPU synchronised around "
                  "each; medians.", "",
                  "| shape | params | supervision steps | steps | ours | reference | ours / reference |",
                  "|---|---|---|---|---|---|---|"]
        shapes = (("seed", "seed: dim 1024, depth 4, seq 4096, batch 1"),
                  ("tiny", "tiny preset: dim 64, depth 2, seq 64, batch 16"))
        for key, label in shapes:
            r = data.get(f"speed_{key}")
            if not r:
                why = data.get(f"speed_{key}_error", "stage did not run")
                lines.append(f"| {label} | not measured: {why} | | | | | |")
                continue
            sps = r["samples_per_s"]
            lines.append(f"| {label} | {r['params']:,} | {r['shape']['sup']} | {r['shape']['steps']} | "
                         f"{_fmt(sps.get('ours'), unit=' samples/s')} | {_fmt(sps.get('reference'), unit=' samples/s')} | "
                         f"**{_fmt(r['ratio_vs_reference'].get('ours'), unit='x')}** |")
        lines += ["", "`train.compile` against eager, ours alone (the first step includes compiling):", "",
                  "| shape | eager | compiled | compiled / eager | first compiled step | peak GPU memory |",
                  "|---|---|---|---|---|---|"]
        for key, label in shapes:
            r = data.get(f"speed_{key}_ours_ours_compiled")
            if not r:
                why = data.get(f"compile_{key}_error", "stage did not run")
                lines.append(f"| {label} | not measured: {why} | | | | |")
                continue
            sps = r["samples_per_s"]
            lines.append(f"| {label} | {_fmt(sps.get('ours'), unit=' samples/s')} | "
                         f"{_fmt(sps.get('ours_compiled'), unit=' samples/s')} | "
                         f"{_fmt(r['ratio_vs_reference'].get('ours_compiled'), unit='x')} | "
                         f"{_fmt(r['first_step_s'].get('ours_compiled'), '.1f', ' s')} | "
                         f"{_fmt(r.get('peak_mem_mib'), '.0f', ' MiB')} |")
        best = (data.get("speed_seed") or {}).get("ratio_vs_reference", {}).get("ours")
        lines += ["", "Goal: at least 1.5x the reference at the seed's shape: "
                  + ("not measured" if best is None else f"{best:.2f}x, **{'met' if best >= 1.5 else 'NOT met'}**."), ""]
        ref = data.get("reference_trm")
        lines += ["### Against the reference's own trainer (`bench/reference_trm_speed.py`)", "",
                  "The reference's pretrain.py step (its model in ACTLossHead, AdamATan2 and sign-SGD) against ours "
                  "(refill carry), bf16, eager, same weights and batches, interleaved medians; columns: shape, net, "
                  "batch, mode, reference samples/s, ours, ours/reference, peak MiB reference, ours:", "",
                  f"`{ref}`" if ref else f"Not measured: {data.get('reference_trm_error', 'stage did not run')}", "",
                  "Goal (issue 26): at least 1.3x the reference's samples/s at each paper shape, peak memory no "
                  "higher.", ""]
        run = data.get("reference_trm_run")
        lines += ["As each trainer's loop runs (`--loop run`: windows of steps between two syncs; the reference "
                  "reads its metrics to the host every step as its pretrain.py does, ours every 10 steps), same "
                  "columns:", "",
                  f"`{run}`" if run else f"Not measured: {data.get('reference_trm_run_error', 'stage did not run')}",
                  ""]
        profiles = sorted((k.removeprefix("profile_"), v) for k, v in data.items()
                          if k.startswith("profile_") and isinstance(v, dict))
        lines += ["### Where a step's time goes (`bench/step_profile.py`, torch.profiler)", ""]
        if profiles:
            lines += ["Our refill step (the paper presets'), bf16; GPU busy = the union of kernel intervals over "
                      "the wall time; syncs = runtime calls that make the host wait for the GPU.", "",
                      "| run | shape | batch | figures read every | compile | first step | wall / step | "
                      "GPU busy / step | busy share | kernels / step | syncs / step |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
            for name, r in profiles:
                lines.append(f"| {name} | {r['shape']} | {r['batch']} | {r['read_every']} | {r['compile']} | "
                             f"{_fmt(r.get('first_step_s'), '.1f', ' s')} | "
                             f"{_fmt(r['wall_ms_per_step'], '.2f', ' ms')} | "
                             f"{_fmt(r.get('gpu_busy_ms_per_step'), '.2f', ' ms')} | "
                             f"{_fmt(r.get('gpu_busy_share') and 100 * r['gpu_busy_share'], '.1f', '%')} | "
                             f"{_fmt(r.get('kernels_per_step'), '.0f')} | {_fmt(r.get('syncs_per_step'), '.2f')} |")
            lines.append("")
        else:
            lines += [f"Not measured: {data.get('profile_error', 'stage did not run')}", ""]
        auto = data.get("compile_auto")
        lines += ["`train.compile = 'auto'` on this GPU (the worker's own trial, tests/test_compile_choice.py): "
                  + (f"`{auto}`" if auto else f"not measured: {data.get('compile_auto_error', 'stage did not run')}"),
                  ""]
        lines += ["### How busy the GPU is while the worker trains", ""]
        for name, u in sorted((k.removeprefix("utilisation_"), v) for k, v in data.items()
                              if k.startswith("utilisation_")):
            lines.append(f"- `{name}` ({', '.join(s for s in u['sets'] if not s.startswith('data.cache'))}): GPU busy "
                         f"**{_fmt(u['util_mean_pct'], '.1f', '%')}** mean (min {_fmt(u['util_min_pct'], '.0f', '%')}, "
                         f"{_fmt(u['util_share_ge_90'] and 100 * u['util_share_ge_90'], '.0f', '%')} of {u['nvml_samples']} "
                         f"NVML reads at 90% or more) over {u['seconds']} s, {u['steps']} steps at "
                         f"{_fmt(u['samples_per_s_median'])} samples/s; worker's own GPU memory "
                         f"{_fmt(u['worker_mem_mib'], '.0f', ' MiB')}, mean power {_fmt(u['power_w_mean'], '.0f', ' W')}.")
        seed_u = data.get("utilisation_seed", {}).get("util_mean_pct")
        lines += ["", "Goal: at least 90% busy at the seed's shape: "
                  + ("not measured" if seed_u is None else f"{seed_u:.1f}%, **{'met' if seed_u >= 90 else 'NOT met'}**."), ""]
        dash = data.get("dashboard")
        lines += ["### The dashboard's cost on a GPU machine", ""]
        if dash:
            lines += [f"`bench/dashboard_throughput.py` (tiny preset on the GPU, the real dashboard in a "
                      f"{dash.get('terminal', 'terminal')} against headless): {dash['summary']}", "",
                      f"Goal: under 1% (b/a at least 0.99): **{'met' if dash['ratio'] >= 0.99 else 'NOT met'}**.", ""]
        else:
            lines += [f"Not measured: {data.get('dashboard_error', 'stage did not finish')}", ""]
        tests = data.get("cuda_tests")
        lines += ["### CUDA tests (`pytest -m cuda`)", "", f"`{tests}`" if tests else "Not run.", ""]
        if data.get("cuda_test_figures"):
            lines += ["What they measured:", ""] + [f"- {line}" for line in data["cuda_test_figures"]] + [""]
    lines.append(SECTION_END)
    section = "\n".join(lines)
    text = args.docs.read_text()
    if SECTION_START in text:
        text = re.sub(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    args.docs.write_text(text)
    print(section)


def note(args: argparse.Namespace) -> None:
    """Record one value under a dotted key: a stage's error, the tests' summary line, a JSON file's content."""
    if args.json_file:
        value: Any = json.loads(args.json_file.read_text())
    elif args.lines:  # merged with what an earlier run recorded: a line replaces the one with its first word
        new = [line for line in (args.text or "").splitlines() if line.strip()]
        heads = {line.split()[0] for line in new}
        value = [line for line in load(args.results).get(args.key, []) if line.split()[0] not in heads] + new
    else:
        value = args.text
    head, _, tail = args.key.partition(".")
    if tail:
        value = load(args.results).get(head, {}) | {tail: value}
    save(args.results, head, value)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="stage", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--shape", choices=sorted(SHAPES), required=True)
    s.add_argument("--steps", type=int, default=0, help="measured steps of each side (0: the shape's own)")
    s.add_argument("--sup", type=int, default=0, help="supervision steps per batch (0: the shape's own)")
    s.add_argument("--sides", default="ours,reference",
                   help="comma list of ours, ours_compiled, reference; the ratios are against reference if present, "
                        "else against ours")
    u = sub.add_parser("utilisation")
    u.add_argument("--name", default="seed")
    u.add_argument("--seconds", type=float, default=20)
    u.add_argument("--skip-steps", type=int, default=2, help="steps left out first (start-up, allocator warm-up)")
    u.add_argument("--start-timeout", type=float, default=150)
    u.add_argument("--max-bytes", type=int, default=8_000_000, help="corpus cut (reading it is start-up time)")
    u.add_argument("--set", dest="sets", action="append", default=[])
    r = sub.add_parser("report")
    r.add_argument("--docs", type=Path, default=REPO / "docs" / "benchmarks.md")
    n = sub.add_parser("note")
    n.add_argument("--key", required=True, help="a top-level key, or KEY.FIELD")
    n.add_argument("--text")
    n.add_argument("--lines", action="store_true", help="store --text as a list of its non-empty lines")
    n.add_argument("--json-file", type=Path)
    for q in (s, u, r, n):
        q.add_argument("--results", type=Path, required=True)
    args = p.parse_args()
    {"speed": speed, "utilisation": utilisation, "report": report, "note": note}[args.stage](args)


if __name__ == "__main__":
    main()
