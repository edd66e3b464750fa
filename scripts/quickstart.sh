#!/usr/bin/env bash
# Quick start: install what is missing, build, and run the main job.
# The main job today: the AR(1) frame covariance of the default problem, exact and as its
# T. Chan circulant approximation, with the report that says how far apart they are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
mkdir -p results
echo
echo "== exact AR(1) covariance, 16 frames =="
./build/corrsde cov --cov ar1:rho=0.9 --frames 16
echo
echo "== its T. Chan circulant approximation (FFT path) =="
./build/corrsde cov --cov ar1:rho=0.9 --frames 16 --method circulant-tchan
