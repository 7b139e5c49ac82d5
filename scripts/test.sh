#!/usr/bin/env bash
# Sets numeral up if needed (scripts/setup.sh) and the browser test (chromium, playwright-core),
# then runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

# The browser test of the web page: Debian's chromium, driven by playwright-core from npm.
dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed" || {
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test: installing chromium (the browser test)"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends chromium
  cmake -S . -B build >/dev/null  # registers the browser test now that chromium is here
}
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund)

export NUMERAL_PROGRESS=0
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 900
