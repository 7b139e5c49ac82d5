#!/usr/bin/env bash
# One table of numeral's training and sampling steps against this machine's fp32 GEMM rate and
# against the same network in PyTorch (bench/reference.py: eager, TorchScript, frozen TorchScript).
#   bench/run.sh [--threads N] [--seconds S]       (from the repository root, on an idle machine)
# Environment: BUILD (build), PYTHON (/usr/bin/python3: a Python with torch; Debian python3-torch),
# STUDENT (models/mnist-student.safetensors when present).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${BUILD:-build}
python=${PYTHON:-/usr/bin/python3}
student=${STUDENT:-models/mnist-student.safetensors}
args=("$@")
[[ -f $student ]] && args+=(--student "$student")
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
"$build/bench_step" "${args[@]}" | tee -a "$rows" >&2
if "$python" -c "import torch" 2>/dev/null; then
  "$python" bench/reference.py --bench "${args[@]}" | tee -a "$rows" >&2
else
  echo "bench/run.sh: $python has no torch; the PyTorch columns stay empty" >&2
fi
python3 - "$rows" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
gemm = {r["impl"]: r for r in rows if "gemm_gflops" in r}
for impl, r in gemm.items():
    print(f"{impl}: fp32 GEMM {r['gemm_gflops']:.1f} GFLOP/s, {r['threads']} threads, torch {r['torch']}")
steps = [r for r in rows if "step" in r]
key = lambda r: (r["model"], r["step"], r["batch"])
ours = [r for r in steps if r["impl"] == "numeral"]
def other(r, impl):
    for s in steps:
        if s["impl"] == impl and key(s) == key(r):
            return s
# Network calls per digit at the defaults: the teacher samples DDPM 100 with guidance (2 calls a
# step); the student takes 4 steps of one call.
calls = lambda r: 4 if r["model"].startswith("student") else 200
print()
print("| model | step | batch | GFLOP/img | ms/step | img/s | of GEMM | digits/s | PyTorch eager | x | TorchScript (train) / frozen (sample) | x |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in ours:
    eager = other(r, "pytorch eager")
    script = other(r, "pytorch torchscript" if r["step"] == "train" else "pytorch frozen")
    cell = lambda s: f"{s['images_per_s']:.0f}" if s else ""
    ratio = lambda s: f"{r['images_per_s'] / s['images_per_s']:.2f}" if s else ""
    digits = f"{r['images_per_s'] / calls(r):.1f}" if r["step"] == "sample" else ""
    print(f"| {r['model']} | {r['step']} | {r['batch']} | {r['gflop_per_image']:.3f} | "
          f"{r['ms_per_step']:.1f} | {r['images_per_s']:.0f} | {100 * r['gemm_fraction']:.0f}% | "
          f"{digits} | {cell(eager)} | {ratio(eager)} | {cell(script)} | {ratio(script)} |")
PY
