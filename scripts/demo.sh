#!/usr/bin/env bash
# numeral's main job on a fresh Debian 12 machine: set everything up (scripts/setup.sh), then show
# real digits and make new ones. Writes its pictures into ./out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

mkdir -p out
./build/numeral info
./build/numeral data grid --data mnist --per-class 10 --out out/real-grid.png
