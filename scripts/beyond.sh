#!/usr/bin/env bash
# The demonstrations of data beyond 28x28 grey digits (README, "Beyond MNIST"; docs/beyond-mnist.md):
# each trains a model, a judge classifier on the same data, and evaluates it with `numeral eval`.
#   scripts/beyond.sh fashion | colour | 64 | finetune
# Environment: THREADS (1), EPOCHS (per demo below), RUNS (runs), SAMPLER, STEPS and SAMPLES (the
# eval's: ddim, 25, 1000), GRID_FLAGS (sampler flags for the grid). Writes RUNS/<demo>-* and
# docs-ready grids under out/beyond/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export NUMERAL_PROGRESS=0 OPENBLAS_NUM_THREADS=1
threads=${THREADS:-1}
runs=${RUNS:-runs}
mkdir -p out/beyond
numeral=./build/numeral

demo() {  # NAME DATA EPOCHS CLASSIFIER_FLAGS... -- TRAIN_FLAGS...
  local name=$1 data=$2 epochs=$3
  shift 3
  local classifier_flags=() train_flags=()
  while (($#)) && [[ $1 != -- ]]; do classifier_flags+=("$1"); shift; done
  (($#)) && shift
  train_flags=("$@")
  local run=$runs/$name classifier=$runs/classifier-$name
  if [[ ! -f $classifier/checkpoint.safetensors ]]; then
    $numeral classifier train --data "$data" --threads "$threads" --out "$classifier" \
      "${classifier_flags[@]}" > "$classifier.log" 2>&1
  fi
  /usr/bin/time -f "%e s" -o "$run.time" $numeral train --data "$data" --prediction v \
    --epochs "$epochs" --threads "$threads" --preview-every 1 --run-dir "$run" "${train_flags[@]}" \
    > "$run.train.log" 2>&1
  # shellcheck disable=SC2086  # GRID_FLAGS: sampler flags for the grid, split on spaces
  $numeral sample --checkpoint "$run" --per-class 10 --grid "out/beyond/$name-grid.png" \
    ${GRID_FLAGS:-} --threads "$threads" > "$run.sample.log" 2>&1
  # DDIM 25 and 1,000 digits: DDPM 100 on 2,000 takes a core about 20 minutes per model.
  $numeral eval --checkpoint "$run" --classifier "$classifier" --threads "$threads" \
    --sampler "${SAMPLER:-ddim}" --steps "${STEPS:-25}" --samples "${SAMPLES:-1000}" \
    > "$run.eval.log" 2>&1
  tail -n 1 "$run.train.log"
  grep -A7 "^Generated against real" "$run.eval.log"
}

# New classes without retraining: the shipped digit model extended with Fashion-MNIST's 10 classes
# (--init-from) against the same model trained from scratch on the same mix, each evaluated per
# dataset after 30,016 and 120,000 training images (one epoch of the balanced mix).
finetune_arm() {  # NAME TRAIN_FLAGS...
  local name=$1 run=$runs/$1
  shift
  /usr/bin/time -f "%e s" -o "$run-30k.time" $numeral train --data mnist,fashion-mnist --epochs 1 \
    --max-steps 469 --threads "$threads" --run-dir "$run" "$@" > "$run.train.log" 2>&1
  rm -rf "$run-30k" && cp -r "$run" "$run-30k" && rm -f "$run-30k/.numeral.lock"
  /usr/bin/time -f "%e s" -o "$run.time" $numeral train --run-dir "$run" --resume --max-steps 0 \
    --threads "$threads" >> "$run.train.log" 2>&1
}
finetune_eval() {  # RUN
  $numeral eval --checkpoint "$1" --classifier "$runs/classifier-mix" --threads "$threads" \
    --sampler ddim --steps "${STEPS:-25}" --samples "${SAMPLES:-1000}" > "$1.eval.log" 2>&1
  grep -A12 "^Generated against real" "$1.eval.log"
}

case ${1:-} in
  finetune)
    finetune_arm finetune-init --init-from models/mnist.safetensors &
    finetune_arm finetune-scratch --channels 32,32,64 --prediction v &
    wait
    [[ -f $runs/classifier-mix/checkpoint.safetensors ]] ||
      $numeral classifier train --data mnist,fashion-mnist --threads "$threads" \
        --out "$runs/classifier-mix" > "$runs/classifier-mix.log" 2>&1
    for arm in init scratch; do
      (finetune_eval "$runs/finetune-$arm-30k"; finetune_eval "$runs/finetune-$arm") > "$runs/finetune-$arm.evals" &
    done
    wait
    cat "$runs"/finetune-*.evals ;;
  fashion) demo fashion-v fashion-mnist "${EPOCHS:-6}" -- --channels 32,32,64 ;;
  colour)
    [[ -d data/colored-mnist ]] || $numeral data make colored-mnist
    demo colour colored-mnist "${EPOCHS:-15}" -- --channels 32,32,64 ;;
  # The judge's held-out check runs the 10,000 test images at 64x64 every epoch: 3 epochs. A
  # 64x64 image has 5 times the pixels of a 28x28 one: the grid with DDIM 25, 500 images to judge.
  64) GRID_FLAGS="--sampler ddim --steps 25" SAMPLES=${SAMPLES:-500} \
      demo fashion64 fashion-mnist "${EPOCHS:-7}" --image-size 64 --limit 4000 --epochs 3 -- \
        --image-size 64 --limit 4000 --channels 32,32,64,64 --attention-at 16,8 --warmup-steps 50 ;;
  *) echo "usage: scripts/beyond.sh fashion | colour | 64 | finetune" >&2; exit 2 ;;
esac
