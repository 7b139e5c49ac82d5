#!/usr/bin/env bash
# numeral's main job on a fresh Debian 12 machine: set everything up (scripts/setup.sh), then show
# real digits and make new ones. Writes its pictures into ./out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

mkdir -p out
./build/numeral info
./build/numeral data grid --data mnist --per-class 10 --out out/real-grid.png
# New digits from the shipped model (models/README.md says how it was trained), with the default
# sampler (ancestral DDPM, T = 100 steps): plain conditional (w = 0, no autoguidance), then with
# its defaults (classifier-free guidance w = 0.25 plus autoguidance against the weaker model its
# file bundles, w_guide = 2).
./build/numeral sample --checkpoint models/mnist.safetensors --per-digit 10 --w 0 --w-guide 0 \
  --grid out/samples-w0.png
./build/numeral sample --checkpoint models/mnist.safetensors --per-digit 10 \
  --grid out/samples.png
# The fast default: without --checkpoint, the shipped 4-step student at its own guidance weight
# (w = 0.15): 10,000 digits as MNIST IDX files (about 40 s on two cores), and a grid.
./build/numeral sample --per-digit 1000 --idx out/train --overwrite
./build/numeral sample --per-digit 10 --grid out/samples-student.png
./build/numeral noise --data mnist --digit 3,5,8 -o out/noise.png
./build/numeral trajectory --checkpoint models/mnist.safetensors \
  -o out/trajectory.png --gif out/trajectory.gif
echo "demo: pictures in ./out (real-grid.png, samples-w0.png, samples.png, samples-student.png, noise.png,"
echo "      trajectory.png/.gif) and 10,000 student digits as IDX (out/train-images-idx3-ubyte, -labels-)"
