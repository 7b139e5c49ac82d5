#!/usr/bin/env bash
# Sets numeral up if needed (scripts/setup.sh), then runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

export NUMERAL_PROGRESS=0
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 900
