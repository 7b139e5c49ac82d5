#!/usr/bin/env bash
# The PyTorch reference (bench/reference.py) must give numeral's outputs on the shipped models.
#   bench/check_reference.sh PYTHON BENCH_STEP     (run from the repository root; ctest does)
set -euo pipefail
python=$1 bench_step=$2
fixture=$(mktemp --suffix=.safetensors)
trap 'rm -f "$fixture"' EXIT
student=()
[[ -f models/mnist-student.safetensors ]] && student=(--student models/mnist-student.safetensors)
"$bench_step" --dump "$fixture" "${student[@]}"
"$python" bench/reference.py --check "$fixture" "${student[@]}"
