#!/usr/bin/env bash
# The GPU check: builds numeral with CUDA against PyTorch 2.x's LibTorch on a lent GPU machine (no
# Debian -dev packages there, no network), runs the tests, the benchmarks, and trains the candidate
# model, all inside one time limit. Figures go to BENCHMARKS.md by hand.
#   scripts/device.sh fetch     here (Debian, with network): the .debs into .deps/ (git-ignored)
#   scripts/device.sh           there, from the repository root, with .deps, data/mnist and
#                               runs/classifier-mnist carried. Stages: STAGES="build bench test train"
#                               (the default). LIMIT: seconds the whole script may take (540); the
#                               training gets what the other stages leave. Results: $OUT (or out/device).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

debs=(libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev libstb-dev libstb0 libgif-dev libgif7
      zlib1g-dev zlib1g libcpp-httplib-dev libcpp-httplib0.11 libssl-dev libssl3 libbrotli1 libbrotli-dev
      libpcre2-dev libpcre2-8-0 googletest pkgconf pkgconf-bin libpkgconf3
      libgloo-dev)  # Gloo's headers only: the library is inside LibTorch
if [[ ${1:-} == fetch ]]; then
  mkdir -p .deps && cd .deps && apt-get download "${debs[@]}"
  exit
fi

start=$(date +%s)
build=${BUILD_DIR:-build-cuda}
device=${DEVICE:-cuda}
# Batch 512: at 128 the step is launch-bound (BENCHMARKS.md, "On a GPU").
candidate=(${CANDIDATE:---channels 64,128,128 --attention --prediction v --batch-size 512 --lr 2e-3 --warmup-steps 200 --ema-decay 0.999})
limit=${LIMIT:-540}
stages=${STAGES:-build bench test train}
out=${OUT:-$root/out/device}
mkdir -p "$out"
log=$out/logs
mkdir -p "$log"
elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((limit - $(elapsed))); }
say() { echo "[device.sh $(elapsed)s] $*"; }
has() { [[ " $stages " == *" $1 "* ]]; }
summary=$out/summary.txt
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

say "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$summary"
python3 -c 'import torch,sys;print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1 | tee -a "$summary"
nproc
[[ -d /usr/local/cuda/bin ]] && export PATH=/usr/local/cuda/bin:$PATH CUDAToolkit_ROOT=/usr/local/cuda
command -v nvcc && nvcc --version | tail -n 2
torch_cmake=${TORCH_CMAKE:-$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')}

# Dependencies: the Debian packages unpacked into a private prefix (never into /).
P=/tmp/numeral-deps
if has build; then
  say "unpacking .deps into $P"
  rm -rf "$P" && mkdir -p "$P"
  for f in .deps/*.deb; do dpkg -x "$f" "$P" || { echo "cannot unpack $f"; exit 1; }; done
  lib=$P/usr/lib/x86_64-linux-gnu
  ln -sf "$P/lib/x86_64-linux-gnu/libz.so.1.2.13" "$lib/libz.so"  # Debian's link is absolute
  # The .pc files name /usr; point them at the prefix, and drop httplib's private requirements
  # (only its compiled library needs them, and brotli's .pc files are not carried).
  sed -i "s#/usr#$P/usr#g" "$lib"/pkgconfig/*.pc "$P"/usr/share/pkgconfig/*.pc
  sed -i '/^Requires.private/d' "$lib/pkgconfig/cpp-httplib.pc"
  mkdir -p "$P/bin"
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$lib" "$P/usr/bin/pkgconf" >"$P/bin/pkg-config"
  chmod +x "$P/bin/pkg-config"
  # Shared libraries the system lacks (found through LD_LIBRARY_PATH at run time).
  mkdir -p "$P/extra"
  for so in "$lib"/libcpp-httplib.so.0.11 "$lib"/libstb.so.0 "$lib"/libgif.so.7 "$lib"/libpcre2-8.so.0; do
    for need in $(ldd "$so" 2>/dev/null | awk '/not found/ {print $1}'); do
      cp -L "$lib/$need" "$P/extra/" 2>/dev/null || cp -L "$P/lib/x86_64-linux-gnu/$need" "$P/extra/" ||
        echo "missing $need for $so"
    done
  done
  say "building GoogleTest from Debian's source"
  cmake -S "$P/usr/src/googletest" -B /tmp/gtest-build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$P/gtest" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 >"$log/gtest.log" 2>&1 &&
    cmake --build /tmp/gtest-build --target install >>"$log/gtest.log" 2>&1 ||
    { tail -n 20 "$log/gtest.log"; exit 1; }

  export LD_LIBRARY_PATH=$P/extra${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}  # test discovery runs tests
  say "configuring numeral against $torch_cmake"
  export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$P/usr/share/pkgconfig
  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DNUMERAL_WERROR=OFF \
    -DCMAKE_PREFIX_PATH="$torch_cmake;$P/usr;$P/gtest" -DPKG_CONFIG_EXECUTABLE="$P/bin/pkg-config" \
    -Dfmt_DIR="$lib/cmake/fmt" -Dnlohmann_json_DIR="$P/usr/share/cmake/nlohmann_json" \
    -DCLI11_DIR="$P/usr/share/cmake/CLI11" -DGTest_DIR="$P/gtest/lib/cmake/GTest" \
    -DGIF_INCLUDE_DIR="$P/usr/include" -DGIF_LIBRARY="$lib/libgif.so" \
    -DZLIB_INCLUDE_DIR="$P/usr/include" -DZLIB_LIBRARY="$lib/libz.so" \
    -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CUDA_ARCHITECTURES=90 >"$log/configure.log" 2>&1 || { tail -n 40 "$log/configure.log"; exit 1; }
  grep -iE "warning|not found|cuda" "$log/configure.log" | head -n 20
  say "building the CLI and the benchmarks (ninja -k 0)"
  if ! cmake --build $build -j "$(nproc)" --target ${TARGETS:-numeral_cli bench_step bench_serve} \
      -- -k 0 >"$log/build.log" 2>&1; then
    note "BUILD FAILED after $(elapsed)s; the first errors:"
    grep -E "error|Error" "$log/build.log" | grep -v "^ninja: build stopped" | head -n 60
    tar -C "$out" -czf "$out/logs.tgz" logs
    exit 1
  fi
  note "build: CLI and benchmarks ok at $(elapsed)s ($(grep -c warning "$log/build.log") warning lines)"
fi
[[ ${LD_LIBRARY_PATH:-} == *$P/extra* ]] || export LD_LIBRARY_PATH=$P/extra${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export NUMERAL_PROGRESS=0
./$build/numeral info 2>&1 | tee -a "$summary"

# Benchmarks first, on an otherwise idle machine: steps on the GPU against PyTorch's eager and
# TorchScript runs of the same network, then the server under load.
if has bench; then
  say "bench/run.sh --device $device"
  BUILD=$build PYTHON=${PYTHON:-python3} timeout 150 bench/run.sh --device $device --seconds 1 \
    >"$out/bench-step.md" 2>"$log/bench-step.log"
  note "bench_step rc=$?"
  cat "$out/bench-step.md" | tee -a "$summary"
  timeout 60 ./$build/bench_serve --seconds 3 >"$log/bench-serve.log" 2>&1
  note "bench_serve rc=$?"
  tail -n 12 "$log/bench-serve.log" | tee -a "$summary"
fi

# The tests (built, then run on the CPU cores) beside the training (the GPU): neither is timed.
test_pid=""
if has test; then
  say "building and running the tests in the background"
  (
    # nice: the training loop needs a free core to launch its kernels.
    if ! nice -n 19 cmake --build $build -j 12 -- -k 0 >"$log/build-tests.log" 2>&1; then
      echo "TEST BUILD FAILED; the first errors:" >"$log/ctest.log"
      grep -E "error|Error" "$log/build-tests.log" | grep -v "^ninja: build stopped" | head -n 40 \
        >>"$log/ctest.log"
    fi
    NUMERAL_PROGRESS=0 timeout $(($(left) - 60)) nice -n 19 ctest --test-dir $build -j 6 \
      --timeout 240 --output-on-failure >>"$log/ctest.log" 2>&1
    echo "ctest rc=$? at $(elapsed)s" >>"$log/ctest.log"
    # The first test that crashed, again under cuda-gdb for a backtrace.
    crashed=$(grep -m1 -oE "Test +#[0-9]+: [A-Za-z0-9_./]+ .*(SegFault|Child aborted)" "$log/ctest.log" |
      awk '{print $3}')
    if [[ -n $crashed ]] && command -v cuda-gdb >/dev/null; then
      exe=$(ctest --test-dir $build -N -V -R "^${crashed}\$" 2>/dev/null | awk '/Test command:/ {print $4; exit}')
      [[ -n $exe ]] && timeout 60 cuda-gdb -batch -ex run -ex bt --args "$exe" \
        --gtest_filter="$crashed" >"$log/crash-backtrace.log" 2>&1
      echo "backtrace of $crashed in logs/crash-backtrace.log" >>"$log/ctest.log"
    fi
  ) &
  test_pid=$!
fi

# The candidate model: wider U-Net with attention, v prediction, bf16 autocast, as many epochs of
# the 8,000 training digits as the time left allows (one probe epoch measures the rate).
if has train; then
  flags=(--data mnist "${candidate[@]}" --threads 2 --device "$device")
  say "probe epoch"
  t0=$(date +%s.%N)
  probe=("${flags[@]}")
  [[ $device == cuda* ]] && probe+=(--bf16)
  if timeout 120 ./$build/numeral train "${probe[@]}" --epochs 2 --run-dir runs/probe \
      >"$log/probe.log" 2>&1; then
    flags=("${probe[@]}")
  else
    tail -n 5 "$log/probe.log"
    note "probe with ${probe[*]} failed; trying without --bf16"
    t0=$(date +%s.%N)
    rm -rf runs/probe
    timeout 120 ./$build/numeral train "${flags[@]}" --epochs 2 --run-dir runs/probe \
      >"$log/probe.log" 2>&1 || { tail -n 5 "$log/probe.log"; note "training failed"; }
  fi
  # The second epoch's time (the first includes warm-up), and the start-up outside the epochs.
  read -r epoch_s startup_s < <(python3 -c "
import json, time
rows = [json.loads(l) for l in open('runs/probe/log.jsonl') if l.strip()]
e = rows[-1]['elapsed_s'] - rows[0]['elapsed_s']
print(max(e, 0.05), max(time.time() - $t0 - rows[-1]['elapsed_s'], 0))")
  budget=$(($(left) - ${EVAL_RESERVE:-150}))
  epochs=$(python3 -c "print(max(1, int(($budget - $startup_s) / $epoch_s)))")
  note "probe: ${epoch_s}s an epoch, ${startup_s}s start-up; training ${epochs} epochs in ${budget}s"
  t0=$(date +%s)
  timeout -s TERM $((budget + 30)) ./$build/numeral train "${flags[@]}" --epochs "$epochs" \
    --preview-every $((epochs / 4 + 1)) --run-dir runs/candidate >"$log/train.log" 2>&1
  note "train rc=$? in $(($(date +%s) - t0))s: $(tail -n 1 "$log/train.log")"
  ./$build/numeral model export --checkpoint runs/candidate --out "$out/candidate.safetensors" \
    >>"$log/train.log" 2>&1
  cp runs/candidate/log.jsonl "$log/candidate-log.jsonl" 2>/dev/null
  cp runs/candidate/config.json "$log/candidate-config.json" 2>/dev/null
  if [[ -f runs/classifier-mnist/checkpoint.safetensors ]] && (($(left) > 25)); then
    say "eval"
    timeout $(($(left) - 10)) ./$build/numeral eval --checkpoint runs/candidate \
      --classifier runs/classifier-mnist --device $device >"$log/eval.log" 2>&1
    note "eval rc=$?"
    tail -n 25 "$log/eval.log" | tee -a "$summary"
  fi
fi

if [[ -n $test_pid ]]; then
  wait "$test_pid"
  grep -E "TEST BUILD|error|tests passed|tests failed|ctest rc|backtrace" "$log/ctest.log" |
    head -n 30 | tee -a "$summary"
  grep -E "^#[0-9]+ " "$log/crash-backtrace.log" 2>/dev/null | head -n 25 | tee -a "$summary"
  sed -n '/The following tests FAILED/,$p' "$log/ctest.log" | head -n 40 | tee -a "$summary"
fi
tar -C "$out" -czf "$out/logs.tgz" logs && rm -rf "$log"
echo "==== summary"
cat "$summary"
say "done"
