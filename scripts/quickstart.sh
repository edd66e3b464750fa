#!/usr/bin/env bash
# Quick start: install what is missing, build, and run the main job: a solver convergence
# experiment on the built-in problem (PF-ODE of a Gaussian video model with AR(1) frame noise;
# Euler, Heun and RK45 against the exact flow). It prints the table and writes
# results/converge.h5, results/converge.csv and results/converge.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
mkdir -p results
./build/corrsde converge --force -o results/converge.h5 --csv results/converge.csv \
  --plot results/converge.png
