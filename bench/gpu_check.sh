#!/usr/bin/env bash
# The GPU path in one command, at most about 6 minutes on one GPU (a GPU machine may be at hand for a quarter
# of an hour, start-up included). From the repository root, on the GPU machine:
#
#     bench/gpu_check.sh
#
# 1. prints the GPU, driver, CUDA, torch and Python versions;
# 2. installs what is missing (textual, plotext, tomli-w, this project, tiny-recursive-model 0.0.12 and its
#    dependencies) offline, from bench/wheels/ (filled by bench/gpu_wheels.sh on a machine with a registry),
#    keeping the torch it finds;
# 3. measures, each stage under its own share of the time and recorded even if a later one fails:
#    our trainer against tiny-recursive-model at the seed's shape and the tiny preset's, eager and compiled;
#    how busy NVML says the GPU is while the real worker trains at the seed's shape; the CUDA tests
#    (pytest -m cuda); with 2 GPUs or more, the 2-rank DDP tests on nccl and global samples/s at 1 and 2 GPUs
#    (bench/ddp_scaling.py); the dashboard's cost against headless;
# 4. writes every figure, with the GPU named, into docs/benchmarks.md (its own section, replaced on each run)
#    and prints a summary. Raw results: bench/gpu_results/ (kept out of git).
#
# Without a GPU it says so and exits 0 after checking that it would run (its syntax, its Python, its imports).
# Environment: PYTHON (default python3), WHEELS (default bench/wheels), BUDGET_S (default 360), STAGES (a
# subset of: reference_trm reference_trm_run profile speed_seed speed_tiny utilisation_seed
# utilisation_seed_refill cuda_tests compile_auto profile_compiled utilisation_seed_graphs ddp dashboard
# compile_seed compile_tiny), REF_DIR (the reference's checkout for reference_trm, default bench/ref), PYTEST_K
# (a -k filter for the CUDA tests), KEEP_RESULTS=1 (add to the last run's results instead of starting anew).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-bench/wheels}
BUDGET_S=${BUDGET_S:-360}
STAGES=${STAGES:-reference_trm reference_trm_run profile speed_seed speed_tiny utilisation_seed utilisation_seed_refill cuda_tests compile_auto profile_compiled utilisation_seed_graphs ddp dashboard compile_seed compile_tiny}
REF_DIR=${REF_DIR:-bench/ref}  # a checkout of SamsungSAILMontreal/TinyRecursiveModels (ignored by git; carry it)
OUTDIR=bench/gpu_results
RESULTS=$OUTDIR/results.json
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

say() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - T0 ))"; }

say "self-check"
bash -n "$0" || exit 1
"$PY" -m py_compile bench/gpu_bench.py bench/wheel_closure.py bench/dashboard_throughput.py \
    bench/reference_speed.py bench/reference_trm_speed.py bench/step_profile.py bench/ddp_scaling.py \
    tests/test_cuda.py tests/test_distributed.py tests/test_compile_choice.py || exit 1

say "versions"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PY" - <<'EOF' || exit 1
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"GPU {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
EOF

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    "$PY" -c 'import trm_core.worker.process, trm_tui.cli, bench.gpu_bench' || exit 1
    echo "no CUDA GPU here: torch sees none. The script's syntax and imports check out; nothing was measured."
    exit 0
fi

say "install (offline, from $WHEELS)"
if [ -d "$WHEELS" ]; then
    pip_offline() { "$PY" -m pip install -q --no-index --find-links "$WHEELS" "$@" 2>&1 | grep -v "Running pip as"; }
    pip_offline "textual==8.2.8" "plotext==5.3.2" "tomli-w>=1.0" "tiny-recursive-model==0.0.12" pytest pydantic einops
    # this project last and on its own: if its build fails, PYTHONPATH (set above) still finds it
    pip_offline --no-build-isolation --no-deps -e . || echo "(this project is used from PYTHONPATH)"
else
    echo "$WHEELS is missing (fill it with bench/gpu_wheels.sh where a registry is reachable); using what is installed"
fi
"$PY" -c 'import textual, plotext, tomli_w, tiny_recursive_model' || echo "WARNING: a package is missing (above)"

mkdir -p "$OUTDIR"
[ -n "${KEEP_RESULTS:-}" ] || rm -f "$RESULTS"
rm -f "$OUTDIR"/*.log "$OUTDIR/dashboard.json"
"$PY" - "$RESULTS" <<'EOF'
import datetime, json, os, pathlib, platform, subprocess, sys, torch
path = pathlib.Path(sys.argv[1])
old = json.loads(path.read_text()) if path.exists() else {}
smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                     text=True).stdout.strip().splitlines()
json.dump({"environment": {"gpu": torch.cuda.get_device_name(), "driver": smi[0] if smi else "?",
                           "cuda": torch.version.cuda, "torch": torch.__version__, "python": platform.python_version(),
                           "cpus": os.cpu_count(), "date": datetime.date.today().isoformat()}},
          open(sys.argv[1], "w"), indent=1)
if old:  # KEEP_RESULTS: an earlier run's figures stay unless a stage of this run replaces them
    new = json.loads(path.read_text())
    new["environment"]["kept_earlier"] = True
    path.write_text(json.dumps(old | new, indent=1))
EOF

# stage NAME SECONDS CMD...: runs CMD under the smaller of SECONDS and what is left of the budget (less 20 s
# for the report); a stage that fails or runs out of time is recorded as such and the next one runs.
stage() {
    local name=$1 want=$2; shift 2
    local left=$(( BUDGET_S - 20 - ($(date +%s) - T0) ))
    local limit=$(( want < left ? want : left ))
    say "$name (up to ${limit}s)"
    if [ "$limit" -lt 15 ]; then
        "$PY" -m bench.gpu_bench note --results "$RESULTS" --key "${name}_error" --text "skipped: out of the check's time"
        return
    fi
    timeout -k 5 "$limit" "$@" 2>&1 | tee "$OUTDIR/$name.log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        local why="exit $rc"; [ "$rc" -eq 124 ] && why="timed out after ${limit}s"
        "$PY" -m bench.gpu_bench note --results "$RESULTS" --key "${name}_error" \
            --text "$why: $(grep -v '^\s*$' "$OUTDIR/$name.log" | tail -1 | cut -c1-200)"
    fi
}

# Most telling first; torch.compile (a minute or more per shape) last, in what time is left.
has() { [[ " $STAGES " == *" $1 "* ]]; }
if has reference_trm; then  # the comparison users make: the reference's own pretrain.py step (bf16), eager
    if [ -d "$REF_DIR/models" ]; then
        stage reference_trm 110 "$PY" -m bench.reference_trm_speed --ref-dir "$REF_DIR" --device cuda --bf16 \
            --shape sudoku-paper,arc-paper --steps 8 --warmup 3
        "$PY" -m bench.gpu_bench note --results "$RESULTS" --key reference_trm \
            --text "$(grep -E '^(sudoku|maze|arc|seed)' "$OUTDIR/reference_trm.log" 2>/dev/null | tr -s ' ' | paste -sd ';')"
    else
        "$PY" -m bench.gpu_bench note --results "$RESULTS" --key reference_trm_error \
            --text "not run: no reference checkout in $REF_DIR (see bench/reference_trm_speed.py)"
    fi
fi
if has reference_trm_run && [ -d "$REF_DIR/models" ]; then  # each side's own loop: ours reads every 10 steps
    stage reference_trm_run 100 "$PY" -m bench.reference_trm_speed --ref-dir "$REF_DIR" --device cuda --bf16 \
        --shape sudoku-paper,arc-paper --loop run --steps 10 --rounds 3 --warmup 3
    "$PY" -m bench.gpu_bench note --results "$RESULTS" --key reference_trm_run \
        --text "$(grep -E '^(sudoku|maze|arc|seed)' "$OUTDIR/reference_trm_run.log" 2>/dev/null | tr -s ' ' | paste -sd ';')"
fi
if has profile; then  # where a step's time goes: figures read every 10 steps (the presets) and every step (before)
    for every in 10 1; do
        stage "profile_sudoku_read$every" 45 "$PY" -m bench.step_profile --shape sudoku-paper --device cuda --bf16 \
            --read-every "$every" --steps 20 --json-out "$OUTDIR/profile_$every.json"
        [ -f "$OUTDIR/profile_$every.json" ] && "$PY" -m bench.gpu_bench note --results "$RESULTS" \
            --key "profile_sudoku_read$every" --json-file "$OUTDIR/profile_$every.json"
    done
fi
has speed_seed && stage speed_seed 70 "$PY" -m bench.gpu_bench speed --results "$RESULTS" --shape seed
has speed_tiny && stage speed_tiny 40 "$PY" -m bench.gpu_bench speed --results "$RESULTS" --shape tiny
has utilisation_seed && stage utilisation_seed 60 "$PY" -m bench.gpu_bench utilisation --results "$RESULTS" \
    --name seed --seconds 20
has utilisation_seed_refill && stage utilisation_seed_refill 60 "$PY" -m bench.gpu_bench utilisation \
    --results "$RESULTS" --name seed_refill --seconds 20 --set "train.carry='refill'" --set "train.log_every=10"
if has cuda_tests; then
    stage cuda_tests 150 "$PY" -m pytest -q -s -rf --tb=short -p no:cacheprovider -m cuda ${PYTEST_K:+-k "$PYTEST_K"} \
        tests/test_cuda.py
    "$PY" -m bench.gpu_bench note --results "$RESULTS" --key cuda_tests \
        --text "$(grep -E '(passed|failed|skipped|error)' "$OUTDIR/cuda_tests.log" 2>/dev/null | tail -1)"
    "$PY" -m bench.gpu_bench note --results "$RESULTS" --key cuda_test_figures --lines \
        --text "$(grep -E '^(bf16|GPU cap|NVML|compile|GPU panel|six queued|CUDA graphs)' "$OUTDIR/cuda_tests.log" 2>/dev/null | cut -c1-400)"
fi
if has compile_auto; then  # the worker's own trial on the GPU (the micro model: a compile of about a minute)
    stage compile_auto 150 "$PY" -m pytest -q -s -rf --tb=short -p no:cacheprovider -m slow \
        tests/test_compile_choice.py -k restart
    "$PY" -m bench.gpu_bench note --results "$RESULTS" --key compile_auto \
        --text "$(grep -E "^\{'event': 'compile'" "$OUTDIR/compile_auto.log" 2>/dev/null | tail -1 | cut -c1-400)"
fi
if has profile_compiled; then  # its first step: the time to the first step a compiled paper run pays
    stage profile_sudoku_compiled 150 "$PY" -m bench.step_profile --shape sudoku-paper --device cuda --bf16 \
        --compile on --read-every 10 --steps 20 --json-out "$OUTDIR/profile_compiled.json"
    [ -f "$OUTDIR/profile_compiled.json" ] && "$PY" -m bench.gpu_bench note --results "$RESULTS" \
        --key profile_sudoku_compiled --json-file "$OUTDIR/profile_compiled.json"
fi
# the seed's shape under CUDA graphs (its compile is long: more than 88 s eager-compiled in 2026-11)
has utilisation_seed_graphs && stage utilisation_seed_graphs 240 "$PY" -m bench.gpu_bench utilisation \
    --results "$RESULTS" --name seed_graphs --seconds 20 --start-timeout 200 --set "train.carry='refill'" \
    --set "train.log_every=10" --set "train.compile='on'" --set "train.compile_mode='reduce-overhead'"
if has ddp; then
    if [ "$("$PY" -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
        export TRM_TEST_DIST_DEVICE=cuda
        stage ddp_tests 150 "$PY" -m pytest -q -rf --tb=short -p no:cacheprovider tests/test_distributed.py \
            -k "match_one_process or stop_then_resume"
        unset TRM_TEST_DIST_DEVICE
        "$PY" -m bench.gpu_bench note --results "$RESULTS" --key ddp_tests \
            --text "$(grep -E '(passed|failed|skipped|error)' "$OUTDIR/ddp_tests.log" 2>/dev/null | tail -1)"
        stage ddp_scaling 120 "$PY" -m bench.ddp_scaling --ranks 2 --device cuda --json-out "$OUTDIR/ddp.json"
        "$PY" -m bench.gpu_bench note --results "$RESULTS" --key ddp_scaling \
            --text "$(grep -E '^global samples/s' "$OUTDIR/ddp_scaling.log" 2>/dev/null | tail -1)"
    else
        "$PY" -m bench.gpu_bench note --results "$RESULTS" --key ddp_tests --text "not run: one GPU (DDP needs 2)"
    fi
fi
if has dashboard; then
    stage dashboard 60 "$PY" -m bench.dashboard_throughput --rounds 1 --seconds 12 --warmup-steps 10 \
        --json-out "$OUTDIR/dashboard.json"
    [ -f "$OUTDIR/dashboard.json" ] && "$PY" -m bench.gpu_bench note --results "$RESULTS" --key dashboard \
        --json-file "$OUTDIR/dashboard.json"
fi
has compile_seed && stage compile_seed 120 "$PY" -m bench.gpu_bench speed --results "$RESULTS" --shape seed \
    --sides ours,ours_compiled --steps 4
has compile_tiny && stage compile_tiny 90 "$PY" -m bench.gpu_bench speed --results "$RESULTS" --shape tiny \
    --sides ours,ours_compiled --steps 10

say "report"
"$PY" -m bench.gpu_bench note --results "$RESULTS" --key environment.wall_s --text "$(( $(date +%s) - T0 ))"
"$PY" -m bench.gpu_bench report --results "$RESULTS" --docs docs/benchmarks.md
say "done"
