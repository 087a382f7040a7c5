#!/usr/bin/env bash
# Set up .venv and run the main job: a short B2MAPO run on the built-in
# coordination:chain-6 game. Prints progress, writes runs/quickstart/
# (progress.csv, checkpoint.pt, summary.json, graph.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
OUT=${OUT:-runs/quickstart}
# --overwrite: rerunning the quick start replaces its own demo run (other runs are protected)
mapograph train --env coordination:chain-6 --algo b2mapo --steps "${STEPS:-40000}" --seed 0 --out "$OUT" --overwrite
mapograph graph "$OUT"
