#!/usr/bin/env bash
# Fill bench/wheels/ (kept out of git) with every wheel bench/gpu_check.sh installs on a GPU machine that
# has no network: this project's dependencies, the test runner, and tiny-recursive-model 0.0.12 with its own
# dependencies for the speed comparison. Torch and its CUDA libraries are left out: the GPU machine's own
# torch is the one measured. Run on a machine that reaches the package registry, from anywhere:
#
#     bench/gpu_wheels.sh                 # wheels for Python 3.12 (what GPU images ship)
#     PYTHON_VERSION=3.11 bench/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
WHEELS=${WHEELS:-bench/wheels}
python -m bench.wheel_closure --python-version "$PYTHON_VERSION" --dest "$WHEELS" \
    "textual==8.2.8" "plotext==5.3.2" "tomli-w>=1.0" "psutil>=5.9" "nvidia-ml-py>=12.0" "numpy>=1.24" \
    "pytest>=8" "tiny-recursive-model==0.0.12" "setuptools>=68" "wheel"
